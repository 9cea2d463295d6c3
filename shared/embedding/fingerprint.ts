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

/** Scratch bytes for the text being fingerprinted, reused from call to call. */
let scratch = Buffer.alloc(1 << 14);
/** Larger scratch is dropped after use rather than kept for the life of the process. */
const KEEP_SCRATCH = 1 << 20;

function scratchFor(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.alloc(Math.max(bytes, scratch.length * 2));
  return scratch;
}

function releaseScratch(): void {
  if (scratch.length > KEEP_SCRATCH) scratch = Buffer.alloc(1 << 14);
}

/**
 * Writes the normalised form of an all-ASCII `text` at the start of `bytes` (which holds
 * at least `text.length` bytes) and returns its length, or -1 when `text` is not ASCII.
 */
function normaliseAsciiInto(text: string, bytes: Buffer): number {
  const { read, written } = encoder.encodeInto(text, bytes);
  // Any other character takes two bytes or more (an unpaired surrogate three, as U+FFFD).
  if (read !== text.length || written !== text.length) return -1;
  const n = written;
  let i = 0;
  while (i < n && ASCII_SPACE[bytes[i]!] === 1) i += 1;
  let o = 0;
  while (i < n) {
    const c = bytes[i]!;
    if (c > 0x20 || ASCII_SPACE[c] !== 1) {
      bytes[o] = c;
      o += 1;
      i += 1;
      continue;
    }
    let j = i + 1;
    while (j < n && ASCII_SPACE[bytes[j]!] === 1) j += 1;
    if (j === n) break; // trailing whitespace: trimmed
    bytes[o] = 0x20;
    o += 1;
    i = j;
  }
  return o;
}

/** Whitespace-normalised, NFC text: edits that change nothing a model sees keep the same hash. */
export function normaliseText(text: string): string {
  const bytes = scratchFor(text.length);
  try {
    const n = normaliseAsciiInto(text, bytes);
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
  const bytes = scratchFor(text.length + tail.bytes.length);
  try {
    const n = normaliseAsciiInto(text, bytes);
    if (n >= 0) {
      tail.bytes.copy(bytes, n);
      return sha256Hex(bytes.subarray(0, n + tail.bytes.length));
    }
  } finally {
    releaseScratch();
  }
  return sha256Hex(text.normalize('NFC').replace(/\s+/g, ' ').trim() + tail.text);
}
