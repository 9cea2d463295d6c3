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

/** Word, punctuation and CJK-character spans of a text, the unit every counter prices. */
export function pieceSpans(text: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const match of text.matchAll(PIECE))
    out.push({ start: match.index, end: match.index + match[0].length });
  return out;
}

const HANGUL = /^\p{Script=Hangul}$/u;
const WIDE = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}]$/u;

/** Tokens the estimator charges for one piece (see EstimatingTokenCounter). */
function estimatePiece(piece: string): number {
  if (piece.length === 1) {
    // Byte-level BPE spends up to one token per UTF-8 byte on rare ideographs; uncased
    // BERT splits a Hangul syllable into its jamo.
    if (HANGUL.test(piece)) return 3;
    if (WIDE.test(piece)) return 2;
  }
  return piece.length <= 3 ? 1 : Math.ceil(piece.length / 3);
}

/**
 * Conservative estimate for WordPiece/BPE vocabularies without loading one: every
 * punctuation mark is a token, a CJK or Thai character two (a Hangul syllable three),
 * and a word one token per three characters (rounded up), which over-counts common
 * English words and stays at or above the real count for rare words, identifiers and
 * numbers. `npm run bench` (token-estimate) measures it against real vocabularies.
 */
export class EstimatingTokenCounter implements TokenCounter {
  readonly name = 'estimate-v2';

  pieces(text: string): TokenPiece[] {
    const out: TokenPiece[] = [];
    for (const match of text.matchAll(PIECE)) {
      const start = match.index;
      const length = match[0].length;
      out.push({ start, end: start + length, tokens: estimatePiece(match[0]) });
    }
    return out;
  }

  count(text: string): number {
    let total = 0;
    for (const piece of this.pieces(text)) total += piece.tokens;
    return total;
  }
}
