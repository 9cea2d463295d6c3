import { Tokenizer } from '@huggingface/tokenizers';
import { pieceSpans, type TokenCounter, type TokenPiece } from './token-counter.ts';

/**
 * Exact counts from a Hugging Face `tokenizer.json` (WordPiece, BPE, Unigram). Text is
 * cut into the same word, punctuation and CJK pieces as the estimator, each piece is
 * tokenized alone (cached, since words repeat), and its count is exact for tokenizers
 * that pre-split at whitespace and punctuation, as BERT-class models do.
 */
export class TokenizerJsonCounter implements TokenCounter {
  readonly name: string;
  private readonly tokenizer: Tokenizer;
  private readonly cache = new Map<string, number>();

  constructor(tokenizerJson: object, tokenizerConfig: object = {}, name = 'tokenizer.json') {
    this.tokenizer = new Tokenizer(tokenizerJson as never, tokenizerConfig as never);
    this.name = name;
  }

  /** Parses the bytes of a `tokenizer.json` (and optional `tokenizer_config.json`). */
  static fromBytes(json: Uint8Array, config?: Uint8Array, name?: string): TokenizerJsonCounter {
    const decode = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as object;
    return new TokenizerJsonCounter(decode(json), config ? decode(config) : {}, name);
  }

  private tokensOf(piece: string): number {
    const cached = this.cache.get(piece);
    if (cached !== undefined) return cached;
    const count = this.tokenizer.encode(piece, { add_special_tokens: false }).ids.length;
    if (this.cache.size < 200_000) this.cache.set(piece, count);
    return count;
  }

  pieces(text: string): TokenPiece[] {
    return pieceSpans(text).map(({ start, end }) => ({
      start,
      end,
      tokens: this.tokensOf(text.slice(start, end)),
    }));
  }

  count(text: string): number {
    let total = 0;
    for (const { start, end } of pieceSpans(text)) total += this.tokensOf(text.slice(start, end));
    return total;
  }
}
