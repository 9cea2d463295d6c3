import type { TokenCounter, TokenPiece } from './token-counter.ts';

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

const SENTENCE_ENDS = new Set(['.', '!', '?', '。', '！', '？']);
const NEWLINE = 0x0a;

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
function naturalCut(text: string, pieces: readonly TokenPiece[], first: number, last: number): number {
  const floor = first + Math.floor((last - first) / 2);
  let sentence = -1;
  for (let j = last; j > floor; j -= 1) {
    // Pieces never hold whitespace, so the gap between two pieces is all whitespace.
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

/**
 * Cuts a document into token windows with overlap. Windows end at piece boundaries, so
 * words are never split (a single piece longer than the window is its own chunk).
 * Every window advances by at least one piece, so the loop always ends.
 */
export function chunkText(text: string, counter: TokenCounter, options: ChunkingOptions): Chunk[] {
  const pieces = counter.pieces(text);
  if (pieces.length === 0) return [];
  const budget = Math.max(1, options.maxTokens - SPECIAL_TOKENS);
  const chunks: Chunk[] = [];
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
    // Step back over up to `overlapTokens` tokens, but always move forward.
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
