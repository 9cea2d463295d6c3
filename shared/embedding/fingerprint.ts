import crypto from 'node:crypto';
import type { ChunkingOptions } from './chunker.ts';

/*
 * Fast path for ASCII text, which is most text: NFC leaves it as it is, so its UTF-8
 * bytes are its characters, and whitespace runs are collapsed in place in those bytes.
 * In ASCII, `\s` and String.prototype.trim both mean tab, LF, VT, FF, CR and space.
 * Other text takes the general path. Both give the same normalised text and digest
 * (test/core/chunking-equivalence.test.ts compares them with the original).
 */

/** 1 for the ASCII whitespace of `\s` and trim(). */
const ASCII_SPACE = new Uint8Array(0x80);
for (const c of [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20]) ASCII_SPACE[c] = 1;

const encoder = new TextEncoder();

/** Scratch bytes for the text being fingerprinted, reused from call to call, and as words. */
let scratch = newScratch(1 << 14);
/** Larger scratch is dropped after use rather than kept for the life of the process. */
const KEEP_SCRATCH = 1 << 20;

function newScratch(size: number): { bytes: Buffer; words: Int32Array } {
  const buffer = new ArrayBuffer((size + 3) & ~3);
  return { bytes: Buffer.from(buffer), words: new Int32Array(buffer) };
}

function scratchFor(size: number): { bytes: Buffer; words: Int32Array } {
  if (scratch.bytes.length < size) scratch = newScratch(Math.max(size, scratch.bytes.length * 2));
  return scratch;
}

function releaseScratch(): void {
  if (scratch.bytes.length > KEEP_SCRATCH) scratch = newScratch(1 << 14);
}

/** Word-at-a-time scanning reads four bytes as one little-endian int32. */
const LITTLE_ENDIAN = new Uint8Array(new Int32Array([1]).buffer)[0] === 1;

/** Whether byte `k` starts something to rewrite: a control character, or a space before whitespace. */
function irregularAt(bytes: Uint8Array, k: number): boolean {
  const c = bytes[k]!;
  return c < 0x20 || (c === 0x20 && bytes[k + 1]! <= 0x20);
}

/**
 * The first irregular byte in `[i, e)`, else `e`, for ASCII bytes that end in a
 * non-whitespace byte at `e - 1`. Whole words are tested at once where aligned: with
 * every byte below 0x80 no lane carries into the next, so `~(x + 0x5f..) & 0x80..` marks
 * the bytes <= 0x20 and `~((x ^ 0x20..) + 0x7f..) & 0x80..` the spaces.
 */
function nextIrregular(bytes: Uint8Array, words: Int32Array, i: number, e: number): number {
  let k = i;
  if (LITTLE_ENDIAN) {
    for (; k < e && (k & 3) !== 0; k += 1) if (irregularAt(bytes, k)) return k;
    const endWord = e >> 2;
    for (let w = k >> 2; w < endWord; w += 1) {
      const x = words[w]!;
      const low = ~(x + 0x5f5f5f5f) & 0x80808080;
      if (low === 0) continue;
      const space = ~((x ^ 0x20202020) + 0x7f7f7f7f) & 0x80808080;
      // Controls; spaces before a byte <= 0x20 in this word; a last space before the next.
      let irregular = (low & ~space) | (space & (low >>> 8));
      if (space < 0 && bytes[4 * w + 4]! <= 0x20) irregular |= 0x80000000;
      if (irregular !== 0) return 4 * w + ((31 - Math.clz32(irregular & -irregular)) >> 3);
    }
    k = Math.max(k, endWord << 2);
  }
  for (; k < e; k += 1) if (irregularAt(bytes, k)) return k;
  return e;
}

/**
 * Writes the normalised form of an all-ASCII `text` at the start of `bytes` (which holds
 * at least `text.length` bytes) and returns its length, or -1 when `text` is not ASCII.
 */
function normaliseAsciiInto(text: string, bytes: Buffer, words: Int32Array): number {
  const { read, written } = encoder.encodeInto(text, bytes);
  // Any other character takes two bytes or more (an unpaired surrogate three, as U+FFFD).
  if (read !== text.length || written !== text.length) return -1;
  // trim(): without whitespace at either end, every run inside becomes one space.
  let start = 0;
  let end = written;
  while (start < end && ASCII_SPACE[bytes[start]!] === 1) start += 1;
  while (end > start && ASCII_SPACE[bytes[end - 1]!] === 1) end -= 1;
  let o = 0;
  let i = start;
  while (i < end) {
    const k = nextIrregular(bytes, words, i, end);
    if (o !== i) bytes.copyWithin(o, i, k);
    o += k - i;
    if (k === end) break;
    const c = bytes[k]!;
    bytes[o] = ASCII_SPACE[c] === 1 ? 0x20 : c;
    o += 1;
    i = k + 1;
    // The run ends before `end`, whose last byte is not whitespace.
    if (ASCII_SPACE[c] === 1) while (ASCII_SPACE[bytes[i]!] === 1) i += 1;
  }
  return o;
}

/** Whitespace-normalised, NFC text: edits that change nothing a model sees keep the same hash. */
export function normaliseText(text: string): string {
  const { bytes, words } = scratchFor(text.length);
  try {
    const n = normaliseAsciiInto(text, bytes, words);
    if (n >= 0) return bytes.toString('latin1', 0, n);
  } finally {
    releaseScratch();
  }
  return text.normalize('NFC').replace(/\s+/g, ' ').trim();
}

type OneShotHash = (algorithm: string, data: string | Uint8Array, outputEncoding: 'hex') => string;
/** crypto.hash (Node 20.12+, 21.7+): no Hash object per digest; createHash where missing. */
const oneShot = (crypto as { hash?: OneShotHash }).hash;

function sha256Hex(data: string | Uint8Array): string {
  return oneShot ? oneShot('sha256', data, 'hex') : crypto.createHash('sha256').update(data).digest('hex');
}

/** `\0model\0maxTokens/overlapTokens` as UTF-8, for the last model and chunking asked for. */
let suffix = {
  model: '',
  maxTokens: Number.NaN,
  overlapTokens: Number.NaN,
  text: '',
  bytes: Buffer.alloc(0),
};

function suffixFor(model: string, chunking: ChunkingOptions): typeof suffix {
  if (
    model !== suffix.model ||
    chunking.maxTokens !== suffix.maxTokens ||
    chunking.overlapTokens !== suffix.overlapTokens
  ) {
    const text = `\u0000${model}\u0000${chunking.maxTokens}/${chunking.overlapTokens}`;
    suffix = {
      model,
      maxTokens: chunking.maxTokens,
      overlapTokens: chunking.overlapTokens,
      text,
      bytes: Buffer.from(text, 'utf8'),
    };
  }
  return suffix;
}

/** sha256 of normalised text + model id + chunking parameters: the chunk's content identity. */
export function chunkFingerprint(text: string, model: string, chunking: ChunkingOptions): string {
  // The digest of `normalised \0 model \0 max/overlap` in UTF-8; the NULs keep the parts'
  // encodings apart, so encoding them together gives the same bytes as one by one.
  const tail = suffixFor(model, chunking);
  const { bytes, words } = scratchFor(text.length + tail.bytes.length);
  try {
    const n = normaliseAsciiInto(text, bytes, words);
    if (n >= 0) {
      tail.bytes.copy(bytes, n);
      return sha256Hex(bytes.subarray(0, n + tail.bytes.length));
    }
  } finally {
    releaseScratch();
  }
  return sha256Hex(text.normalize('NFC').replace(/\s+/g, ' ').trim() + tail.text);
}
