import { chunkText } from '../shared/embedding/chunker.ts';
import { cutTokenBudgetBatches, paddedTokens } from '../shared/embedding/token-budget-batcher.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';
import { logNormalDocuments } from './log-normal-documents.ts';

export interface PaddingWorkload {
  readonly documents: number;
  readonly chunks: number;
  readonly realTokens: number;
  readonly sluice: { paddedTokens: number; efficiency: number; batches: number };
  readonly baseline: { description: string; paddedTokens: number; efficiency: number; batches: number };
  readonly paddedTokensRatio: number;
  /**
   * The ratio a batcher with no padding at all would reach (baseline padded / real
   * tokens): no batcher can beat it on this workload.
   */
  readonly bestPossibleRatio: number;
}

export interface PaddingResult {
  readonly name: 'padding';
  readonly workloads: (PaddingWorkload & { readonly workload: string })[];
}

/**
 * Padding waste: real tokens / padded tokens for Sluice's sorted token-budget batches
 * vs fixed batches of 32 in arrival order, over documents with log-normal lengths. Two
 * workloads: articles (median ~55 words, many chunked at the 256-token cap) and short
 * records such as tickets or reviews (median ~20 words, none chunked). The gain over the
 * baseline is bounded by the baseline's own waste: where most batches already hold a
 * full-length chunk, even perfect batching cannot save much more.
 */
export function runPaddingBench(): PaddingResult {
  return {
    name: 'padding',
    workloads: [
      { workload: 'articles: log-normal(mu=4, sigma=1.2) words', ...paddingWorkload(5000, 11, 4, 1.2) },
      { workload: 'short records: log-normal(mu=3, sigma=1.0) words', ...paddingWorkload(20000, 12, 3, 1.0) },
    ],
  };
}

function paddingWorkload(documents: number, seed: number, mu: number, sigma: number): PaddingWorkload {
  const counter = new EstimatingTokenCounter();
  const chunkTokens: number[] = [];
  for (const text of logNormalDocuments({ documents, seed, mu, sigma })) {
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
    bestPossibleRatio: fixedPadded / realTokens,
  };
}
