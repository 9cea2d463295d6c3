/**
 * The chunker, estimating token counter and fingerprint as they were before the fast
 * paths (regex pieces, one object per piece, normalize + regex + trim), kept verbatim as
 * the reference the equivalence tests compare the optimised code with.
 */
import { createHash } from 'node:crypto';

export interface RefPiece {
  readonly start: number;
  readonly end: number;
  readonly tokens: number;
}

export interface RefChunk {
  readonly index: number;
  readonly text: string;
  readonly charStart: number;
  readonly charEnd: number;
  readonly tokens: number;
}

export interface RefOptions {
  readonly maxTokens: number;
  readonly overlapTokens: number;
}

const PIECE =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Thai}]|[\p{L}\p{M}\p{N}_]+|[^\s\p{L}\p{M}\p{N}_]/gu;

export function refPieceSpans(text: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const match of text.matchAll(PIECE))
    out.push({ start: match.index, end: match.index + match[0].length });
  return out;
}

const HANGUL = /^\p{Script=Hangul}$/u;
const WIDE = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}]$/u;

function estimatePiece(piece: string): number {
  if (piece.length === 1) {
    if (HANGUL.test(piece)) return 3;
    if (WIDE.test(piece)) return 2;
  }
  return piece.length <= 3 ? 1 : Math.ceil(piece.length / 3);
}

/** Pieces as the estimate-v2 counter priced them. */
export function refPieces(text: string): RefPiece[] {
  const out: RefPiece[] = [];
  for (const match of text.matchAll(PIECE)) {
    const start = match.index;
    const length = match[0].length;
    out.push({ start, end: start + length, tokens: estimatePiece(match[0]) });
  }
  return out;
}

export function refCount(text: string): number {
  let total = 0;
  for (const piece of refPieces(text)) total += piece.tokens;
  return total;
}

const SPECIAL_TOKENS = 2;
const SENTENCE_ENDS = new Set(['.', '!', '?', '。', '！', '？']);
const NEWLINE = 0x0a;

function isParagraphBreak(text: string, from: number, to: number): boolean {
  let newlines = 0;
  for (let i = from; i < to; i += 1) if (text.charCodeAt(i) === NEWLINE && ++newlines === 2) return true;
  return false;
}

function naturalCut(text: string, pieces: readonly RefPiece[], first: number, last: number): number {
  const floor = first + Math.floor((last - first) / 2);
  let sentence = -1;
  for (let j = last; j > floor; j -= 1) {
    const piece = pieces[j]!;
    const nextStart = pieces[j + 1]!.start;
    if (isParagraphBreak(text, piece.end, nextStart)) return j;
    if (
      sentence < 0 &&
      nextStart > piece.end &&
      piece.end - piece.start === 1 &&
      SENTENCE_ENDS.has(text[piece.start]!)
    )
      sentence = j;
  }
  return sentence >= 0 ? sentence : last;
}

/** chunkText over any piece source (the estimator's by default). */
export function refChunkText(
  text: string,
  options: RefOptions,
  piecesOf: (text: string) => readonly RefPiece[] = refPieces,
): RefChunk[] {
  const pieces = piecesOf(text);
  if (pieces.length === 0) return [];
  const budget = Math.max(1, options.maxTokens - SPECIAL_TOKENS);
  const chunks: RefChunk[] = [];
  let first = 0;
  while (first < pieces.length) {
    let last = first;
    let tokens = pieces[first]!.tokens;
    while (last + 1 < pieces.length && tokens + pieces[last + 1]!.tokens <= budget) {
      last += 1;
      tokens += pieces[last]!.tokens;
    }
    if (last + 1 < pieces.length) {
      const cut = naturalCut(text, pieces, first, last);
      for (let j = last; j > cut; j -= 1) tokens -= pieces[j]!.tokens;
      last = cut;
    }
    const charStart = pieces[first]!.start;
    const charEnd = pieces[last]!.end;
    chunks.push({
      index: chunks.length,
      text: text.slice(charStart, charEnd),
      charStart,
      charEnd,
      tokens: tokens + SPECIAL_TOKENS,
    });
    if (last + 1 >= pieces.length) break;
    let next = last + 1;
    let overlap = 0;
    while (next - 1 > first && overlap + pieces[next - 1]!.tokens <= options.overlapTokens) {
      next -= 1;
      overlap += pieces[next]!.tokens;
    }
    first = next;
  }
  return chunks;
}

export function refNormaliseText(text: string): string {
  return text.normalize('NFC').replace(/\s+/g, ' ').trim();
}

export function refChunkFingerprint(text: string, model: string, chunking: RefOptions): string {
  return createHash('sha256')
    .update(refNormaliseText(text))
    .update('\u0000')
    .update(model)
    .update('\u0000')
    .update(`${chunking.maxTokens}/${chunking.overlapTokens}`)
    .digest('hex');
}
