/**
 * The character-code chunker, estimator and fingerprint give exactly what the regex
 * versions they replaced gave (kept in chunking-reference.ts), for every kind of text.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chunkText } from '../../shared/embedding/chunker.ts';
import { chunkFingerprint, normaliseText } from '../../shared/embedding/fingerprint.ts';
import {
  EstimatingTokenCounter,
  PieceBuffer,
  pieceSpans,
  type TokenCounter,
} from '../../shared/embedding/token-counter.ts';
import {
  refChunkFingerprint,
  refChunkText,
  refCount,
  refNormaliseText,
  refPieceSpans,
  refPieces,
} from './chunking-reference.ts';

const counter = new EstimatingTokenCounter();

/** `\s` and String.prototype.trim whitespace, and look-alikes that are neither. */
const WHITESPACE = [
  ' ',
  '  ',
  '\t',
  '\n',
  '\n\n',
  '\r\n',
  '\r\n\r\n',
  '\r',
  '\v',
  '\f',
  '\u00a0',
  '\u1680',
  '\u2000',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
  '\ufeff',
  '\u0085', // NEL: not \s in JavaScript
  '\u200b', // zero-width space: not \s
  '\u180e', // Mongolian vowel separator: not \s since Unicode 6.3
  '\u001c', // file separator: not \s in JavaScript (it is in Python)
  ' \n \t ',
];
const PUNCTUATION = [
  '.',
  '!',
  '?',
  ',',
  ';',
  ':',
  '-',
  '"',
  "'",
  '(',
  ')',
  '/',
  '\\',
  '\u0000',
  '\u007f',
  '。',
  '！',
  '？',
  '…',
  '—',
  '、',
  '«',
  '»',
  '$',
  '€',
];
const WIDE_TEXT = [
  '東京都',
  '日本語の文章です',
  'ひらがな',
  'カタカナ',
  'ｶﾀｶﾅ',
  '한국어',
  '한',
  'ภาษาไทย',
  '๏',
  '々',
  '〇',
  '⺀',
  '中文，标点。',
];
const ASTRAL = [
  '😀',
  '👍🏽',
  '👨‍👩‍👧',
  '🇯🇵',
  '𠀀',
  '𠮷野家',
  '𝐀𝐁',
  '𝟙',
  '\u{1f600}\u{e0100}',
  '\ud800',
  '\udc00',
  '\udbff\ud800',
];
const MARKS = ['e\u0301', '\u0301', 'a\u0308\u0304', '\u0e31', '\u200d', 'n\u0303o', '\ufe0f', '\u20dd'];
const OTHER_WORDS = ['café', 'naïve', 'Ωmega', 'straße', '٣٤', '½', 'Ⅻ', 'ǅ', 'İ', 'Ａｂｃ'];

const fragment = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9_]{1,14}$/) },
  { weight: 4, arbitrary: fc.constantFrom(...WHITESPACE) },
  { weight: 3, arbitrary: fc.constantFrom(...PUNCTUATION) },
  { weight: 2, arbitrary: fc.constantFrom(...WIDE_TEXT) },
  { weight: 2, arbitrary: fc.constantFrom(...ASTRAL) },
  { weight: 2, arbitrary: fc.constantFrom(...MARKS) },
  { weight: 2, arbitrary: fc.constantFrom(...OTHER_WORDS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 4 })
      .map((units) => String.fromCharCode(...units)),
  },
);

/** All-ASCII text, control characters included (the fast paths' domain). */
const asciiFragment = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9_]{1,14}$/) },
  { weight: 4, arbitrary: fc.constantFrom(' ', '  ', '\t', '\n', '\n\n', '\r\n', '\v', '\f', ' \n \t ') },
  { weight: 3, arbitrary: fc.constantFrom('.', '!', '?', ',', '-', '\u0000', '\u001c', '\u007f', '\u0008') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 6 }) },
);

/** Mixed text, short or long enough for several windows, or all ASCII. */
const mixedText = fc.oneof(
  fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join('')),
  fc.array(fragment, { maxLength: 1500 }).map((parts) => parts.join('')),
  fc.array(asciiFragment, { maxLength: 1500 }).map((parts) => parts.join('')),
);

/** Prose: words, sentence ends, paragraph breaks; English-like or CJK with full-width stops. */
const sentenceOf = (word: fc.Arbitrary<string>, ends: string[], joins: string[]) =>
  fc
    .tuple(
      fc.array(word, { minLength: 1, maxLength: 14 }),
      fc.constantFrom(...joins),
      fc.constantFrom(...ends),
    )
    .map(([words, join, end]) => `${words.join(join)}${end}`);
const proseOf = (sentence: fc.Arbitrary<string>, gaps: string[]) =>
  fc
    .array(fc.tuple(fc.array(sentence, { minLength: 1, maxLength: 6 }), fc.constantFrom(...gaps)), {
      maxLength: 40,
    })
    .map((paragraphs) => paragraphs.map(([sentences, gap]) => `${sentences.join(' ')}${gap}`).join(''));
const proseText = fc.oneof(
  proseOf(
    sentenceOf(fc.stringMatching(/^[A-Za-z]{1,10}$/), ['.', '!', '?', ',', ''], [' ', ' ', ', ', '\n']),
    ['\n\n', '\r\n\r\n', '\n', ' \n \n ', '\n\n\n'],
  ),
  proseOf(
    sentenceOf(fc.constantFrom(...WIDE_TEXT, 'abc', '한국어'), ['。', '！', '？', '、', '.'], ['', ' ']),
    ['\n\n', '\n', ' ', '\u3000', ''],
  ),
);

const chunking = fc
  .oneof(fc.integer({ min: 8, max: 512 }), fc.integer({ min: 8, max: 48 }))
  .chain((maxTokens) =>
    fc.record({
      maxTokens: fc.constant(maxTokens),
      overlapTokens: fc.integer({ min: 0, max: maxTokens >> 1 }),
    }),
  );

/** A counter with only `pieces()`, as third-party counters have, priced by the reference. */
const objectOnlyCounter: TokenCounter = { name: 'reference', pieces: refPieces, count: refCount };

describe('EstimatingTokenCounter matches the regex estimator', () => {
  it('gives the same pieces, spans and counts for mixed text', () => {
    fc.assert(
      fc.property(mixedText, (text) => {
        const want = refPieces(text);
        expect(counter.pieces(text)).toEqual(want);
        expect(pieceSpans(text)).toEqual(refPieceSpans(text));
        expect(counter.count(text)).toBe(refCount(text));
        const packed = new PieceBuffer(1);
        counter.piecesInto(text, packed);
        expect(packed.length).toBe(want.length);
        want.forEach((piece, i) => {
          expect([packed.starts[i], packed.ends[i], packed.tokens[i]]).toEqual([
            piece.start,
            piece.end,
            piece.tokens,
          ]);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('classifies every UTF-16 code unit as the regex does, alone and next to a word', () => {
    for (let unit = 0; unit < 0x10000; unit += 1) {
      const char = String.fromCharCode(unit);
      for (const text of [char, `a${char}`, `${char}a`, `${char}${char}`]) {
        const got = counter.pieces(text);
        const want = refPieces(text);
        if (
          got.length !== want.length ||
          got.some((p, i) => p.end !== want[i]!.end || p.tokens !== want[i]!.tokens)
        )
          expect({ unit: unit.toString(16), text, got }).toEqual({
            unit: unit.toString(16),
            text,
            got: want,
          });
      }
    }
  });

  it('classifies astral code points as the regex does', () => {
    const codePoints: number[] = [];
    for (let cp = 0x10000; cp < 0x40000; cp += 1) codePoints.push(cp);
    for (let cp = 0xe0000; cp < 0xe0200; cp += 1) codePoints.push(cp);
    for (let cp = 0x40000; cp <= 0x10ffff; cp += 997) codePoints.push(cp);
    const alone = codePoints.map((cp) => String.fromCodePoint(cp)).join(' ');
    const joined = codePoints.map((cp) => `x${String.fromCodePoint(cp)}`).join('');
    for (const text of [alone, joined]) {
      expect(counter.pieces(text)).toEqual(refPieces(text));
    }
  });
});

describe('chunkText matches the regex chunker', () => {
  it('gives the same chunks for mixed text and any window', () => {
    fc.assert(
      fc.property(mixedText, chunking, (text, options) => {
        expect(chunkText(text, counter, options)).toEqual(refChunkText(text, options));
      }),
      { numRuns: 500 },
    );
  });

  it('gives the same chunks for English-like and CJK prose', () => {
    fc.assert(
      fc.property(proseText, chunking, (text, options) => {
        expect(chunkText(text, counter, options)).toEqual(refChunkText(text, options));
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same chunks through a counter without piecesInto', () => {
    fc.assert(
      fc.property(mixedText, chunking, (text, options) => {
        expect(chunkText(text, objectOnlyCounter, options)).toEqual(refChunkText(text, options));
      }),
      { numRuns: 200 },
    );
  });

  it('handles empty, whitespace-only and one-piece text', () => {
    const options = { maxTokens: 8, overlapTokens: 2 };
    for (const text of ['', ' ', '\r\n\u00a0\u2028\ufeff\t', 'a', '😀', '\ud800', 'x'.repeat(100), '東'])
      expect(chunkText(text, counter, options)).toEqual(refChunkText(text, options));
  });

  it('gives the same chunks on a document large enough to grow the piece buffer', () => {
    const text = Array.from(
      { length: 60_000 },
      (_, i) => `word${i % 97}${i % 13 === 0 ? '.\n\n' : ' '}`,
    ).join('');
    const options = { maxTokens: 256, overlapTokens: 32 };
    expect(chunkText(text, counter, options)).toEqual(refChunkText(text, options));
    const small = 'Short text. Still the same.';
    expect(chunkText(small, counter, options)).toEqual(refChunkText(small, options));
  });
});

describe('chunkFingerprint and normaliseText match the reference', () => {
  const model = fc.oneof(
    fc.constantFrom('bge-small-en-v1.5', 'model-x', 'モデル', '', '\ud800m', 'm\udc00', '\u0000'),
    fc.string({ maxLength: 12 }),
  );

  it('normalises mixed text the same way', () => {
    fc.assert(
      fc.property(mixedText, (text) => {
        expect(normaliseText(text)).toBe(refNormaliseText(text));
      }),
      { numRuns: 500 },
    );
  });

  it('normalises every code unit between words and at the ends the same way', () => {
    for (let unit = 0; unit < 0x10000; unit += 1) {
      const char = String.fromCharCode(unit);
      for (const text of [char, `a${char}b`, `a${char}${char} b`, ` ${char}a${char} `])
        if (normaliseText(text) !== refNormaliseText(text))
          expect({ unit: unit.toString(16), got: normaliseText(text) }).toEqual({
            unit: unit.toString(16),
            got: refNormaliseText(text),
          });
    }
  });

  it('gives the same digest for every code unit between words, in runs and at the ends', () => {
    const options = { maxTokens: 256, overlapTokens: 32 };
    for (let unit = 0; unit < 0x10000; unit += 1) {
      const char = String.fromCharCode(unit);
      for (const text of [
        char,
        `a${char}b`,
        `ab${char}${char} cd`,
        ` ${char}a${char} `,
        `abc \u00a0${char}\n`,
      ])
        if (chunkFingerprint(text, 'm', options) !== refChunkFingerprint(text, 'm', options))
          expect({ unit: unit.toString(16), text }).toBe('the same digest as the reference');
    }
  });

  it('gives the same digest for astral characters at every alignment', () => {
    const options = { maxTokens: 256, overlapTokens: 32 };
    for (let cp = 0x1f300; cp < 0x1f400; cp += 1)
      for (const pad of ['', 'a', 'ab', 'abc'])
        for (const text of [
          `${pad}${String.fromCodePoint(cp)} \u3000x`,
          `${pad} ${String.fromCodePoint(cp)}`,
        ])
          expect(chunkFingerprint(text, 'm', options)).toBe(refChunkFingerprint(text, 'm', options));
  });

  it('gives the same digest for long text of three-byte characters', () => {
    // Larger than any scratch kept between calls, so sized for this text alone.
    const text = `${'東'.repeat(2_000_000)}\u3000end`;
    const options = { maxTokens: 256, overlapTokens: 32 };
    expect(chunkFingerprint(text, 'm', options)).toBe(refChunkFingerprint(text, 'm', options));
  });

  it('normalises long text whose UTF-8 overruns its length the same way', () => {
    // Fills a scratch buffer sized to the text exactly with fewer characters than it has.
    const text = `\u00e9${'a'.repeat(2_999_999)}`;
    expect(normaliseText(text)).toBe(refNormaliseText(text));
  });

  it('gives the same digest for mixed text, prose and chunks of them', () => {
    fc.assert(
      fc.property(fc.oneof(mixedText, proseText), model, chunking, (text, name, options) => {
        expect(chunkFingerprint(text, name, options)).toBe(refChunkFingerprint(text, name, options));
        for (const chunk of chunkText(text, counter, options))
          expect(chunkFingerprint(chunk.text, name, options)).toBe(
            refChunkFingerprint(chunk.text, name, options),
          );
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same digest for empty, whitespace-only, NFC-sensitive and long text', () => {
    const options = { maxTokens: 256, overlapTokens: 32 };
    const texts = [
      '',
      ' ',
      '\r\n\t \u00a0\u2028\ufeff',
      'e\u0301',
      '\u00e9',
      'Å and \u212b',
      '\ud800 lone',
      'a'.repeat(200_000),
      `${' word'.repeat(50_000)}\n\n`,
    ];
    for (const text of texts)
      expect(chunkFingerprint(text, 'm', options)).toBe(refChunkFingerprint(text, 'm', options));
  });
});

describe('chunkFingerprint without crypto.hash (Node before 20.12)', () => {
  afterEach(() => {
    vi.doUnmock('node:crypto');
    vi.resetModules();
  });

  it('gives the same digest through createHash', async () => {
    vi.resetModules();
    vi.doMock('node:crypto', async (importOriginal) => {
      const actual = await importOriginal<typeof import('node:crypto')>();
      return { ...actual, default: { ...actual, hash: undefined } };
    });
    const fallback = await import('../../shared/embedding/fingerprint.ts');
    const options = { maxTokens: 128, overlapTokens: 16 };
    for (const text of ['', 'ascii  text\n\nhere', 'café  東京 😀', 'e\u0301'])
      expect(fallback.chunkFingerprint(text, 'm', options)).toBe(refChunkFingerprint(text, 'm', options));
  });
});
