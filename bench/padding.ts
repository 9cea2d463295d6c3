import { seededRandom } from '../events/generate-samples.ts';
import { chunkText } from '../shared/embedding/chunker.ts';
import { cutTokenBudgetBatches, paddedTokens } from '../shared/embedding/token-budget-batcher.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';

export interface PaddingResult {
  readonly name: 'padding';
  readonly documents: number;
  readonly chunks: number;
  readonly realTokens: number;
  readonly sluice: { paddedTokens: number; efficiency: number; batches: number };
  readonly baseline: { description: string; paddedTokens: number; efficiency: number; batches: number };
  readonly paddedTokensRatio: number;
}

/**
 * Padding waste: real tokens / padded tokens for Sluice's sorted token-budget batches
 * vs fixed batches of 32 in arrival order, over documents with log-normal lengths.
 */
export function runPaddingBench(documents = 5000, seed = 11): PaddingResult {
  const rand = seededRandom(seed);
  const words = [
    'queue',
    'bucket',
    'embedding',
    'token',
    'partition',
    'throughput',
    'a',
    'the',
    'of',
    'latency',
  ];
  const counter = new EstimatingTokenCounter();
  const chunkTokens: number[] = [];
  for (let d = 0; d < documents; d += 1) {
    const gaussian = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const length = Math.max(3, Math.round(Math.exp(4 + 1.2 * gaussian)));
    const text = Array.from({ length }, () => words[Math.floor(rand() * words.length)]).join(' ');
    for (const chunk of chunkText(text, counter, { maxTokens: 256, overlapTokens: 32 }))
      chunkTokens.push(chunk.tokens);
  }
  const realTokens = chunkTokens.reduce((a, b) => a + b, 0);
  const sorted = [];
  for (let i = 0; i < chunkTokens.length; i += 2048) {
    sorted.push(
      ...cutTokenBudgetBatches(chunkTokens.slice(i, i + 2048), (t) => t, {
        maxBatchTokens: 16384,
        maxBatchSize: 32,
      }),
    );
  }
  const fixed = [];
  for (let i = 0; i < chunkTokens.length; i += 32) fixed.push(chunkTokens.slice(i, i + 32));
  const sluicePadded = sorted.reduce((sum, b) => sum + paddedTokens(b), 0);
  const fixedPadded = fixed.reduce((sum, b) => sum + paddedTokens(b), 0);
  return {
    name: 'padding',
    documents,
    chunks: chunkTokens.length,
    realTokens,
    sluice: { paddedTokens: sluicePadded, efficiency: realTokens / sluicePadded, batches: sorted.length },
    baseline: {
      description: 'fixed batches of 32 in arrival order',
      paddedTokens: fixedPadded,
      efficiency: realTokens / fixedPadded,
      batches: fixed.length,
    },
    paddedTokensRatio: fixedPadded / sluicePadded,
  };
}
