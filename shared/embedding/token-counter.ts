/** A piece of text that counts as one or more model tokens, with its character span. */
export interface TokenPiece {
  readonly start: number;
  readonly end: number;
  readonly tokens: number;
}

/**
 * Pieces packed into parallel arrays (struct of arrays), reused from call to call so that
 * cutting a document allocates nothing per piece. Entries at and past `length` are stale.
 */
export class PieceBuffer {
  length = 0;
  starts: Int32Array;
  ends: Int32Array;
  tokens: Int32Array;

  constructor(capacity = 1024) {
    const size = Math.max(16, capacity);
    this.starts = new Int32Array(size);
    this.ends = new Int32Array(size);
    this.tokens = new Int32Array(size);
  }

  get capacity(): number {
    return this.starts.length;
  }

  /** Makes room for at least `capacity` pieces, keeping the first `length`. */
  reserve(capacity: number): void {
    if (capacity <= this.starts.length) return;
    const size = Math.max(capacity, this.starts.length * 2);
    const grow = (old: Int32Array) => {
      const next = new Int32Array(size);
      next.set(old.subarray(0, this.length));
      return next;
    };
    this.starts = grow(this.starts);
    this.ends = grow(this.ends);
    this.tokens = grow(this.tokens);
  }

  push(start: number, end: number, tokens: number): void {
    if (this.length === this.starts.length) this.reserve(this.length + 1);
    const i = this.length;
    this.starts[i] = start;
    this.ends[i] = end;
    this.tokens[i] = tokens;
    this.length = i + 1;
  }

  /** Replaces the contents with `pieces`. */
  assign(pieces: readonly TokenPiece[]): void {
    this.length = 0;
    this.reserve(pieces.length);
    for (const piece of pieces) this.push(piece.start, piece.end, piece.tokens);
  }
}

/** Counts model tokens; implementations must not under-count (chunks must fit the model). */
export interface TokenCounter {
  readonly name: string;
  pieces(text: string): TokenPiece[];
  count(text: string): number;
  /**
   * Optional fast path for the chunker: the same pieces as `pieces(text)`, written into
   * `into` (replacing what it held) instead of one object per piece.
   */
  piecesInto?(text: string, into: PieceBuffer): void;
}

/*
 * Pieces are the matches of
 *   /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Thai}]|[\p{L}\p{M}\p{N}_]+|[^\s\p{L}\p{M}\p{N}_]/gu
 * (a CJK, Hangul or Thai character alone; a run of letters, marks, digits and `_`; any
 * other character but whitespace alone), found by a character-code scan instead: an
 * all-ASCII text over its bytes with two tables, any other text by code point, each
 * classified once by the same Unicode property regexes and remembered.
 * test/core/chunking-equivalence.test.ts compares the scan with the regex.
 */

/** Bits of a code point's class; 0 means not classified yet. */
const KNOWN = 1;
/** `[\p{L}\p{M}\p{N}_]`: continues (or starts) a word run. */
const WORD = 2;
/** `\s`: between pieces. */
const SPACE = 4;
/** Han, Hiragana, Katakana, Hangul or Thai script: a piece of its own where a piece starts. */
const WIDE = 8;
/** Hangul script (with WIDE). */
const HANGUL = 16;

const WORD_CHAR = /^[\p{L}\p{M}\p{N}_]$/u;
const SPACE_CHAR = /^\s$/u;
const WIDE_CHAR = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Thai}]$/u;
const HANGUL_CHAR = /^\p{Script=Hangul}$/u;

function classify(codePoint: number): number {
  // A lone surrogate is a code point of its own (category Cs) to a /u regex, as here.
  const char = String.fromCodePoint(codePoint);
  let cls = KNOWN;
  if (WORD_CHAR.test(char)) cls |= WORD;
  if (SPACE_CHAR.test(char)) cls |= SPACE;
  if (WIDE_CHAR.test(char)) cls |= WIDE;
  if (HANGUL_CHAR.test(char)) cls |= HANGUL;
  return cls;
}

/** Class of every UTF-16 code unit seen so far (surrogates stand for themselves, unpaired). */
const BMP_CLASS = new Uint8Array(0x10000);
for (let c = 0; c < 0x80; c += 1) BMP_CLASS[c] = classify(c);
/** Class of astral code points seen so far (bounded: astral text is rare). */
const ASTRAL_CLASS = new Map<number, number>();

function bmpClass(unit: number): number {
  const cls = BMP_CLASS[unit]!;
  if (cls !== 0) return cls;
  const computed = classify(unit);
  BMP_CLASS[unit] = computed;
  return computed;
}

function astralClass(codePoint: number): number {
  const cached = ASTRAL_CLASS.get(codePoint);
  if (cached !== undefined) return cached;
  const computed = classify(codePoint);
  if (ASTRAL_CLASS.size < 50_000) ASTRAL_CLASS.set(codePoint, computed);
  return computed;
}

/** Whether units `i` and `i + 1` are a surrogate pair, one code point to a /u regex. */
function isPairAt(text: string, i: number, unit: number): boolean {
  if (unit < 0xd800 || unit > 0xdbff || i + 1 >= text.length) return false;
  const low = text.charCodeAt(i + 1);
  return low >= 0xdc00 && low <= 0xdfff;
}

/** Estimator tokens of a word run `length` UTF-16 units long (see EstimatingTokenCounter). */
function wordTokens(length: number): number {
  return length <= 3 ? 1 : Math.ceil(length / 3);
}

/** ASCII word characters `[A-Za-z0-9_]` and whitespace (tab, LF, VT, FF, CR, space), by byte. */
const ASCII_WORD = new Uint8Array(0x100);
const ASCII_SPACE = new Uint8Array(0x100);
for (let c = 0; c < 0x80; c += 1) {
  if ((BMP_CLASS[c]! & WORD) !== 0) ASCII_WORD[c] = 1;
  if ((BMP_CLASS[c]! & SPACE) !== 0) ASCII_SPACE[c] = 1;
}

const encoder = new TextEncoder();
/** The bytes of the text being scanned, reused from call to call. */
let asciiScratch = new Uint8Array(1 << 14);

/**
 * scanPieces for all-ASCII text, over its bytes (native UTF-8 encoding is much cheaper
 * than the per-character work it saves). Returns false, having written nothing, for
 * any other text.
 */
function scanAsciiPieces(text: string, into: PieceBuffer): boolean {
  const n = text.length;
  if (asciiScratch.length < n) asciiScratch = new Uint8Array(Math.max(n, asciiScratch.length * 2));
  const bytes = asciiScratch;
  const { read, written } = encoder.encodeInto(text, bytes);
  // Any other character takes two bytes or more (an unpaired surrogate three, as U+FFFD).
  const ascii = read === n && written === n;
  if (ascii) {
    let starts = into.starts;
    let ends = into.ends;
    let tokens = into.tokens;
    let count = 0;
    let i = 0;
    while (i < n) {
      const c = bytes[i]!;
      if (ASCII_SPACE[c] === 1) {
        i += 1;
        continue;
      }
      let end = i + 1;
      let pieceTokens = 1;
      if (ASCII_WORD[c] === 1) {
        while (end < n && ASCII_WORD[bytes[end]!] === 1) end += 1;
        pieceTokens = ((end - i + 2) / 3) | 0; // wordTokens(end - i)
      }
      if (count === starts.length) {
        into.length = count;
        into.reserve(count + 1);
        starts = into.starts;
        ends = into.ends;
        tokens = into.tokens;
      }
      starts[count] = i;
      ends[count] = end;
      tokens[count] = pieceTokens;
      count += 1;
      i = end;
    }
    into.length = count;
  }
  if (asciiScratch.length > 1 << 20) asciiScratch = new Uint8Array(1 << 14);
  return ascii;
}

/**
 * Writes the pieces of `text` into `into`, with the estimator's tokens for each piece.
 * The estimate of a piece: a one-unit Hangul character 3, a one-unit Han, Kana or Thai
 * character 2, else one token per three UTF-16 units, rounded up.
 */
function scanPieces(text: string, into: PieceBuffer): void {
  if (scanAsciiPieces(text, into)) return;
  const n = text.length;
  let starts = into.starts;
  let ends = into.ends;
  let tokens = into.tokens;
  let count = 0;
  let i = 0;
  while (i < n) {
    const unit = text.charCodeAt(i);
    let cls: number;
    let width = 1;
    if (unit < 0x80) cls = BMP_CLASS[unit]!;
    else if (isPairAt(text, i, unit)) {
      cls = astralClass(text.codePointAt(i)!);
      width = 2;
    } else cls = bmpClass(unit);
    let end = i + width;
    let pieceTokens = 1;
    // In the regex's order: a wide character, else a word run, else whitespace is skipped.
    if ((cls & WIDE) !== 0) {
      // One character; an astral one is two units long, so it prices as a short word.
      if (width === 1) pieceTokens = (cls & HANGUL) !== 0 ? 3 : 2;
    } else if ((cls & WORD) !== 0) {
      while (end < n) {
        const next = text.charCodeAt(end);
        if (next < 0x80) {
          if ((BMP_CLASS[next]! & WORD) === 0) break;
          end += 1;
        } else if (isPairAt(text, end, next)) {
          if ((astralClass(text.codePointAt(end)!) & WORD) === 0) break;
          end += 2;
        } else {
          if ((bmpClass(next) & WORD) === 0) break;
          end += 1;
        }
      }
      pieceTokens = wordTokens(end - i);
    } else if ((cls & SPACE) !== 0) {
      i = end;
      continue;
    }
    if (count === starts.length) {
      into.length = count;
      into.reserve(count + 1);
      starts = into.starts;
      ends = into.ends;
      tokens = into.tokens;
    }
    starts[count] = i;
    ends[count] = end;
    tokens[count] = pieceTokens;
    count += 1;
    i = end;
  }
  into.length = count;
}

/** Scratch pieces for calls that only need spans or totals. */
let scratch: PieceBuffer | undefined;

function withScratch<T>(text: string, use: (pieces: PieceBuffer) => T): T {
  const pieces = scratch ?? new PieceBuffer();
  scratch = undefined; // re-entrant calls get their own
  try {
    scanPieces(text, pieces);
    return use(pieces);
  } finally {
    if (pieces.capacity <= 1 << 16) scratch = pieces;
  }
}

/** Word, punctuation and CJK-character spans of a text, the unit every counter prices. */
export function pieceSpans(text: string): { start: number; end: number }[] {
  return withScratch(text, (pieces) => {
    const out: { start: number; end: number }[] = [];
    for (let i = 0; i < pieces.length; i += 1) out.push({ start: pieces.starts[i]!, end: pieces.ends[i]! });
    return out;
  });
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
    return withScratch(text, (pieces) => {
      const out: TokenPiece[] = [];
      for (let i = 0; i < pieces.length; i += 1)
        out.push({ start: pieces.starts[i]!, end: pieces.ends[i]!, tokens: pieces.tokens[i]! });
      return out;
    });
  }

  piecesInto(text: string, into: PieceBuffer): void {
    scanPieces(text, into);
  }

  count(text: string): number {
    return withScratch(text, (pieces) => {
      let total = 0;
      for (let i = 0; i < pieces.length; i += 1) total += pieces.tokens[i]!;
      return total;
    });
  }
}
