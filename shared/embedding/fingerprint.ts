import crypto from 'node:crypto';
import type { ChunkingOptions } from './chunker.ts';

/*
 * The normalised text is built as UTF-8 bytes in reused scratch, not as strings: NFC
 * (skipped for ASCII text, which it leaves as it is), then each run of whitespace
 * collapsed to one space in place, and the ends trimmed. `\s` and String.prototype.trim
 * mean the same characters: tab, LF, VT, FF, CR, space, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000 and U+FEFF. The bytes hashed are the ones the
 * original `createHash().update(string)` hashed, unpaired surrogates included (both
 * encode them as U+FFFD). test/core/chunking-equivalence.test.ts compares the two.
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

/** UTF-8 length of the whitespace character starting at `bytes[k]`, else 0. */
function spaceLength(bytes: Uint8Array, k: number): number {
  const c = bytes[k]!;
  if (c < 0x80) return ASCII_SPACE[c]!;
  if (c === 0xc2) return bytes[k + 1] === 0xa0 ? 2 : 0; // U+00A0
  if (c === 0xe2) {
    const b1 = bytes[k + 1]!;
    const b2 = bytes[k + 2]!;
    // U+2000-U+200A, U+2028, U+2029, U+202F; U+205F
    if (b1 === 0x80) return b2 <= 0x8a || b2 === 0xa8 || b2 === 0xa9 || b2 === 0xaf ? 3 : 0;
    return b1 === 0x81 && b2 === 0x9f ? 3 : 0;
  }
  if (c === 0xe1) return bytes[k + 1] === 0x9a && bytes[k + 2] === 0x80 ? 3 : 0; // U+1680
  if (c === 0xe3) return bytes[k + 1] === 0x80 && bytes[k + 2] === 0x80 ? 3 : 0; // U+3000
  if (c === 0xef) return bytes[k + 1] === 0xbb && bytes[k + 2] === 0xbf ? 3 : 0; // U+FEFF
  return 0;
}

/** Whether whitespace other than one lone space starts at `bytes[k]` (so it must be rewritten). */
function rewriteAt(bytes: Uint8Array, k: number): boolean {
  const c = bytes[k]!;
  if (c === 0x20) return spaceLength(bytes, k + 1) !== 0;
  if (c < 0x80) return ASCII_SPACE[c] === 1;
  return spaceLength(bytes, k) !== 0;
}

/**
 * The first byte in `[i, e)` where rewriteAt holds, else `e`; `bytes[e - 1]` ends a
 * character that is not whitespace. Where aligned, four bytes are screened at once for
 * the only bytes that can start a rewrite: ASCII at or below 0x20, a space before one
 * of those or before a non-ASCII byte, and UTF-8 lead bytes (0xC0 and above). Masked
 * to seven bits no lane carries into the next, so `~(x + 0x5f..) & 0x80..` marks the
 * lanes at or below 0x20 and `~((x ^ 0x20..) + 0x7f..) & 0x80..` the spaces.
 */
function nextRewrite(bytes: Uint8Array, words: Int32Array, i: number, e: number): number {
  let k = i;
  if (LITTLE_ENDIAN) {
    for (; k < e && (k & 3) !== 0; k += 1) if (rewriteAt(bytes, k)) return k;
    const endWord = e >> 2;
    for (let w = k >> 2; w < endWord; w += 1) {
      const x = words[w]!;
      const ascii = ~x & 0x80808080;
      const seven = x & 0x7f7f7f7f;
      const low = ~(seven + 0x5f5f5f5f) & ascii;
      const high = x & 0x80808080;
      if ((low | high) === 0) continue;
      const space = ~((seven ^ 0x20202020) + 0x7f7f7f7f) & ascii;
      let candidates = (low & ~space) | (space & ((low | high) >>> 8)) | (x & (x << 1) & 0x80808080);
      if (space < 0) {
        // A space in the last lane, before the next word's first byte (inside `e`).
        const next = bytes[4 * w + 4]!;
        if (next <= 0x20 || next >= 0x80) candidates |= 0x80000000;
      }
      while (candidates !== 0) {
        const at = 4 * w + ((31 - Math.clz32(candidates & -candidates)) >> 3);
        if (rewriteAt(bytes, at)) return at;
        candidates &= candidates - 1;
      }
    }
    k = Math.max(k, endWord << 2);
  }
  for (; k < e; k += 1) if (rewriteAt(bytes, k)) return k;
  return e;
}

/**
 * Collapses each whitespace run in the UTF-8 `bytes[0, n)` to one space and trims the
 * ends, in place (as `.replace(/\s+/g, ' ').trim()`); returns the new length.
 */
function collapseWhitespace(bytes: Buffer, words: Int32Array, n: number): number {
  let start = 0;
  let end = n;
  for (let length = 0; start < end; start += length) {
    length = spaceLength(bytes, start);
    if (length === 0) break;
  }
  while (end > start) {
    let last = end - 1;
    while (last > start && (bytes[last]! & 0xc0) === 0x80) last -= 1;
    if (spaceLength(bytes, last) !== end - last) break;
    end = last;
  }
  let o = 0;
  let i = start;
  while (i < end) {
    const k = nextRewrite(bytes, words, i, end);
    if (o !== i) bytes.copyWithin(o, i, k);
    o += k - i;
    if (k === end) break;
    // A run of whitespace starts at k and ends before `end`; measured before the space
    // is written, which may be over its first byte.
    i = k;
    for (let length = spaceLength(bytes, i); length !== 0; length = spaceLength(bytes, i)) i += length;
    bytes[o] = 0x20;
    o += 1;
  }
  return o;
}

/**
 * Writes the UTF-8 of the normalised `text` at the start of scratch with `reserve` bytes
 * free after it, and returns the scratch and that length.
 */
function normalisedUtf8(text: string, reserve: number): { bytes: Buffer; words: Int32Array; length: number } {
  let { bytes, words } = scratchFor(text.length + reserve);
  let { read, written } = encoder.encodeInto(text, bytes);
  // All ASCII exactly when every character took one byte (an unpaired surrogate takes three).
  if (read !== text.length || written !== text.length) {
    const nfc = text.normalize('NFC');
    ({ bytes, words } = scratchFor(3 * nfc.length + reserve)); // UTF-8 takes at most 3 bytes a unit
    ({ read, written } = encoder.encodeInto(nfc, bytes));
  }
  return { bytes, words, length: collapseWhitespace(bytes, words, written) };
}

/** Whitespace-normalised, NFC text: edits that change nothing a model sees keep the same hash. */
export function normaliseText(text: string): string {
  // Decoding the bytes would turn unpaired surrogates into U+FFFD, so only ASCII is.
  if (!/^[\0-\x7f]*$/.test(text)) return text.normalize('NFC').replace(/\s+/g, ' ').trim();
  try {
    const { bytes, length } = normalisedUtf8(text, 0);
    return bytes.toString('latin1', 0, length);
  } finally {
    releaseScratch();
  }
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
      bytes: Buffer.from(text, 'utf8'),
    };
  }
  return suffix;
}

/** sha256 of normalised text + model id + chunking parameters: the chunk's content identity. */
export function chunkFingerprint(text: string, model: string, chunking: ChunkingOptions): string {
  // The digest of `normalised \0 model \0 max/overlap` in UTF-8; the NULs keep the parts'
  // encodings apart, so encoding them together gives the same bytes as one by one.
  const tail = suffixFor(model, chunking).bytes;
  try {
    const { bytes, length } = normalisedUtf8(text, tail.length);
    tail.copy(bytes, length);
    return sha256Hex(bytes.subarray(0, length + tail.length));
  } finally {
    releaseScratch();
  }
}
