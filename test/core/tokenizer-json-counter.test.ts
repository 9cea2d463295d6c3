import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkText, SPECIAL_TOKENS } from '../../shared/embedding/chunker.ts';
import { TokenizerJsonCounter } from '../../shared/embedding/tokenizer-json-counter.ts';
import { wordPieceTokenizerJson } from '../support/wordpiece-fixture.ts';

describe('TokenizerJsonCounter', () => {
  const counter = new TokenizerJsonCounter(wordPieceTokenizerJson(), {}, 'fixture-wordpiece');

  it('counts WordPiece tokens exactly', () => {
    expect(counter.count('The queue holds messages')).toBe(4 + 1); // the, queue, holds, message ##s
    expect(counter.count('Embedding!')).toBe(3); // embed ##ding !
    expect(counter.count('東京都')).toBe(3);
    expect(counter.count('xyz')).toBe(3); // x ##y ##z
  });

  it('agrees with tokenizing the whole text at once', async () => {
    const { Tokenizer } = await import('@huggingface/tokenizers');
    const whole = new Tokenizer(wordPieceTokenizerJson() as never, {} as never);
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9 ,.!?_\n-]{0,200}$/), (text) => {
        expect(counter.count(text)).toBe(whole.encode(text, { add_special_tokens: false }).ids.length);
      }),
      { numRuns: 200 },
    );
  });

  it('drives chunking so no chunk exceeds the model limit', () => {
    const text = 'the queue holds embedded messages and tokens of a message, '.repeat(80);
    for (const chunk of chunkText(text, counter, { maxTokens: 32, overlapTokens: 4 })) {
      expect(counter.count(chunk.text) + SPECIAL_TOKENS).toBeLessThanOrEqual(32);
    }
  });
});

describe('tokenCounterFor', () => {
  it('loads the tokenizer.json a pipeline names from the bucket, and says so when it is missing', async () => {
    const { MemoryObjectStore } = await import('../../shared/adapters/local/memory-object-store.ts');
    const { tokenCounterFor } = await import('../../shared/embedding/token-counter-for.ts');
    const { EstimatingTokenCounter } = await import('../../shared/embedding/token-counter.ts');
    const { pipelineConfig } = await import('./factories.ts');
    const store = new MemoryObjectStore();
    const estimator = new EstimatingTokenCounter();
    const config = pipelineConfig({
      chunking: { maxTokens: 64, overlapTokens: 8, tokenizer: { key: 'config/tokenizer.json' } },
    });
    await expect(tokenCounterFor(store, config, estimator)).rejects.toThrow(
      'chunking.tokenizer.key: no object config/tokenizer.json in the bucket',
    );
    await store.put('config/tokenizer.json', JSON.stringify(wordPieceTokenizerJson()));
    const counter = await tokenCounterFor(store, config, estimator);
    expect(counter.name).toBe('config/tokenizer.json');
    expect(counter.count('xyz')).toBe(3);
    expect(await tokenCounterFor(store, pipelineConfig(), estimator)).toBe(estimator);
  });
});
