import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkText, SPECIAL_TOKENS } from '../../shared/embedding/chunker.ts';
import { chunkFingerprint } from '../../shared/embedding/fingerprint.ts';
import { cutTokenBudgetBatches, paddedTokens } from '../../shared/embedding/token-budget-batcher.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';

const counter = new EstimatingTokenCounter();

describe('EstimatingTokenCounter', () => {
  it('charges punctuation one token, a CJK character two and a Hangul syllable three', () => {
    // Hello (2) , (1) world (2) ! (1): over-counting short words is the safe side.
    expect(counter.count('Hello, world!')).toBe(6);
    expect(counter.count('東京都')).toBe(6);
    expect(counter.count('한국')).toBe(6);
    expect(counter.count('internationalization')).toBe(7);
  });
});

describe('chunkText', () => {
  it('keeps every chunk within the token limit and covers all the text in order', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 3000 }),
        fc.integer({ min: 8, max: 64 }),
        fc.integer({ min: 0, max: 7 }),
        (text, maxTokens, overlap) => {
          const chunks = chunkText(text, counter, { maxTokens, overlapTokens: overlap });
          const pieces = counter.pieces(text);
          if (pieces.length === 0) {
            expect(chunks).toEqual([]);
            return;
          }
          chunks.forEach((chunk, i) => {
            expect(chunk.index).toBe(i);
            expect(chunk.text).toBe(text.slice(chunk.charStart, chunk.charEnd));
            const single = counter.pieces(chunk.text).length === 1;
            if (!single) expect(chunk.tokens).toBeLessThanOrEqual(maxTokens);
            expect(chunk.tokens).toBe(counter.count(chunk.text) + SPECIAL_TOKENS);
            if (i > 0) expect(chunk.charStart).toBeGreaterThan(chunks[i - 1]!.charStart);
          });
          expect(chunks[0]!.charStart).toBe(pieces[0]!.start);
          expect(chunks.at(-1)!.charEnd).toBe(pieces.at(-1)!.end);
          for (let i = 1; i < chunks.length; i += 1)
            expect(chunks[i]!.charStart).toBeLessThanOrEqual(chunks[i - 1]!.charEnd);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('ends chunks at paragraph breaks, else at sentence ends, when one falls in the window', () => {
    const paragraph = (n: number) =>
      Array.from({ length: 6 }, (_, i) => `Sentence ${n}.${i} has a few words`).join('. ');
    const text = Array.from({ length: 8 }, (_, n) => `${paragraph(n)}.`).join('\n\n');
    const chunks = chunkText(text, counter, { maxTokens: 64, overlapTokens: 0 });
    for (const chunk of chunks.slice(0, -1)) {
      const after = text.slice(chunk.charEnd, chunk.charEnd + 2);
      expect(after === '\n\n' || (chunk.text.endsWith('.') && after.startsWith(' '))).toBe(true);
    }
    const prose = Array.from({ length: 40 }, (_, i) => `Words in sentence number ${i} end here`).join('. ');
    const sentences = chunkText(prose, counter, { maxTokens: 48, overlapTokens: 0 });
    expect(sentences.slice(0, -1).every((c) => c.text.endsWith('.'))).toBe(true);
  });

  it('repeats up to the overlap between neighbouring chunks', () => {
    const text = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    const chunks = chunkText(text, counter, { maxTokens: 12, overlapTokens: 4 });
    expect(chunks.length).toBeGreaterThan(5);
    expect(chunks[1]!.text.startsWith('w6 w7 w8 w9')).toBe(true);
  });
});

describe('cutTokenBudgetBatches', () => {
  it('puts every item in exactly one batch within both budgets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 600 }), { maxLength: 300 }),
        fc.integer({ min: 512, max: 20000 }),
        fc.integer({ min: 1, max: 64 }),
        (tokens, maxBatchTokens, maxBatchSize) => {
          const items = tokens.map((t, id) => ({ id, t }));
          const batches = cutTokenBudgetBatches(items, (x) => x.t, { maxBatchTokens, maxBatchSize });
          expect(
            batches
              .flat()
              .map((x) => x.id)
              .sort((a, b) => a - b),
          ).toEqual(items.map((x) => x.id));
          for (const batch of batches) {
            expect(batch.length).toBeLessThanOrEqual(maxBatchSize);
            if (batch.length > 1)
              expect(paddedTokens(batch.map((x) => x.t))).toBeLessThanOrEqual(maxBatchTokens);
          }
        },
      ),
    );
  });

  it('wastes little padding on mixed lengths because it sorts first', () => {
    const tokens = Array.from({ length: 2000 }, (_, i) => 10 + ((i * 7919) % 500));
    const batches = cutTokenBudgetBatches(tokens, (t) => t, { maxBatchTokens: 16384, maxBatchSize: 32 });
    const real = tokens.reduce((a, b) => a + b, 0);
    const padded = batches.reduce((sum, b) => sum + paddedTokens(b), 0);
    expect(real / padded).toBeGreaterThan(0.9);
  });
});

describe('chunkFingerprint', () => {
  it('ignores whitespace changes and depends on model and chunking', () => {
    const opts = { maxTokens: 256, overlapTokens: 32 };
    expect(chunkFingerprint('a  b\n c', 'm', opts)).toBe(chunkFingerprint('a b c', 'm', opts));
    expect(chunkFingerprint('a b c', 'm2', opts)).not.toBe(chunkFingerprint('a b c', 'm', opts));
    expect(chunkFingerprint('a b c', 'm', { ...opts, maxTokens: 128 })).not.toBe(
      chunkFingerprint('a b c', 'm', opts),
    );
  });
});
