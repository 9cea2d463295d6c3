/** A piece of text that counts as one or more model tokens, with its character span. */
export interface TokenPiece {
  readonly start: number;
  readonly end: number;
  readonly tokens: number;
}

/** Counts model tokens; implementations must not under-count (chunks must fit the model). */
export interface TokenCounter {
  readonly name: string;
  pieces(text: string): TokenPiece[];
  count(text: string): number;
}

// Ideographic and syllabic scripts: tokenizers give each character one token or more.
const PIECE =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Thai}]|[\p{L}\p{M}\p{N}_]+|[^\s\p{L}\p{M}\p{N}_]/gu;

/**
 * Conservative estimate for WordPiece/BPE vocabularies without loading one: every
 * punctuation mark and CJK character is a token, and a word costs one token per three
 * characters (rounded up), which over-counts common English words and stays at or above
 * the real count for rare words, identifiers and numbers.
 */
export class EstimatingTokenCounter implements TokenCounter {
  readonly name = 'estimate-v1';

  pieces(text: string): TokenPiece[] {
    const out: TokenPiece[] = [];
    for (const match of text.matchAll(PIECE)) {
      const start = match.index;
      const length = match[0].length;
      out.push({ start, end: start + length, tokens: length <= 3 ? 1 : Math.ceil(length / 3) });
    }
    return out;
  }

  count(text: string): number {
    let total = 0;
    for (const piece of this.pieces(text)) total += piece.tokens;
    return total;
  }
}
