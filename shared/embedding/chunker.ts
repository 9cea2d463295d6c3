import { PieceBuffer, type TokenCounter } from './token-counter.ts';

export interface Chunk {
  readonly index: number;
  readonly text: string;
  readonly charStart: number;
  readonly charEnd: number;
  readonly tokens: number;
}

export interface ChunkingOptions {
  /** Tokens per chunk including the model's special tokens. @default 256 */
  readonly maxTokens: number;
  /** Tokens repeated at the start of the next chunk, so context spans the cut. @default 32 */
  readonly overlapTokens: number;
}

/** Special tokens a BERT-class model adds to every input ([CLS] and [SEP]). */
export const SPECIAL_TOKENS = 2;

const NEWLINE = 0x0a;

/** Whether a one-unit piece is a sentence end: `.`, `!`, `?`, `。`, `！`, `？`. */
function isSentenceEnd(unit: number): boolean {
  return (
    unit === 0x2e || unit === 0x21 || unit === 0x3f || unit === 0x3002 || unit === 0xff01 || unit === 0xff1f
  );
}

/** Whether the gap `[from, to)` between two pieces holds two newlines (a blank line). */
function isParagraphBreak(text: string, from: number, to: number): boolean {
  let newlines = 0;
  for (let i = from; i < to; i += 1) if (text.charCodeAt(i) === NEWLINE && ++newlines === 2) return true;
  return false;
}

/**
 * Where to end a full window: after the last paragraph break in its second half, else
 * after the last sentence end there, else at the last piece that fits. Cutting at
 * natural boundaries keeps chunks coherent and keeps an edit in one paragraph from
 * shifting the chunks of the next.
 */
function naturalCut(text: string, starts: Int32Array, ends: Int32Array, first: number, last: number): number {
  const floor = first + Math.floor((last - first) / 2);
  let sentence = -1;
  for (let j = last; j > floor; j -= 1) {
    // Pieces never hold whitespace, so the gap between two pieces is all whitespace.
    const end = ends[j]!;
    const nextStart = starts[j + 1]!;
    // A one-unit gap cannot hold two newlines.
    if (nextStart - end > 1 && isParagraphBreak(text, end, nextStart)) return j;
    if (sentence < 0 && nextStart > end && end - starts[j]! === 1 && isSentenceEnd(text.charCodeAt(end - 1)))
      sentence = j;
  }
  return sentence >= 0 ? sentence : last;
}

/** Pieces reused from call to call (chunkText is synchronous); undefined while in use. */
let spare: PieceBuffer | undefined = new PieceBuffer();

/**
 * Cuts a document into token windows with overlap. Windows end at piece boundaries, so
 * words are never split (a single piece longer than the window is its own chunk).
 * Every window advances by at least one piece, so the loop always ends.
 */
export function chunkText(text: string, counter: TokenCounter, options: ChunkingOptions): Chunk[] {
  const pieces = spare ?? new PieceBuffer();
  spare = undefined; // a re-entrant call (a counter that chunks) gets its own
  try {
    if (counter.piecesInto) counter.piecesInto(text, pieces);
    else pieces.assign(counter.pieces(text));
    return cutWindows(text, pieces, options);
  } finally {
    // Keep a buffer sized for ordinary documents, not the largest one ever seen.
    if (pieces.capacity <= 1 << 18) spare = pieces;
  }
}

function cutWindows(text: string, pieces: PieceBuffer, options: ChunkingOptions): Chunk[] {
  const count = pieces.length;
  const chunks: Chunk[] = [];
  if (count === 0) return chunks;
  const { starts, ends, tokens: pieceTokens } = pieces;
  const budget = Math.max(1, options.maxTokens - SPECIAL_TOKENS);
  const overlapTokens = options.overlapTokens;
  let first = 0;
  while (first < count) {
    let last = first;
    let tokens = pieceTokens[first]!;
    while (last + 1 < count && tokens + pieceTokens[last + 1]! <= budget) {
      last += 1;
      tokens += pieceTokens[last]!;
    }
    if (last + 1 < count) {
      const cut = naturalCut(text, starts, ends, first, last);
      for (let j = last; j > cut; j -= 1) tokens -= pieceTokens[j]!;
      last = cut;
    }
    const charStart = starts[first]!;
    const charEnd = ends[last]!;
    chunks.push({
      index: chunks.length,
      text: text.slice(charStart, charEnd),
      charStart,
      charEnd,
      tokens: tokens + SPECIAL_TOKENS,
    });
    if (last + 1 >= count) break;
    // Step back over up to `overlapTokens` tokens, but always move forward.
    let next = last + 1;
    let overlap = 0;
    while (next - 1 > first && overlap + pieceTokens[next - 1]! <= overlapTokens) {
      next -= 1;
      overlap += pieceTokens[next]!;
    }
    first = next;
  }
  return chunks;
}
