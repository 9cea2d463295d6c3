/**
 * The batch shapes a worker sends an embedding copy, for the prepared GPU check
 * (bench/gpu/README.md): the saturation benchmark's workload (7,000 log-normal documents,
 * chunked at 256 tokens, cut into length-sorted token-budget batches exactly as a worker
 * cuts them), written as [inputs, longest input in tokens] pairs. The GPU script runs a
 * BERT of the configured model's shape over exactly these shapes, so its tokens/s is the
 * throughput the capacity rules and the cost model assume (`tokensPerSecond`).
 *
 * `npx tsx bench/gpu/batch-shapes.ts && npx biome format --write bench/gpu/batches.json`
 * rewrites bench/gpu/batches.json; a test keeps the file equal to what this returns.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BATCHING, buildWorkload } from '../saturation.ts';

export interface BatchShapes {
  readonly workload: string;
  readonly batching: typeof BATCHING;
  /** [inputs in the batch, tokens of its longest input]: the batch is padded to that length. */
  readonly batches: readonly (readonly [number, number])[];
  readonly paddedTokens: number;
}

export function batchShapes(documents = 7000, seed = 7): BatchShapes {
  const batches = buildWorkload(documents, seed).map(
    (b) => [b.inputs.length, b.paddedTokens / b.inputs.length] as const,
  );
  return {
    workload: `${documents} log-normal documents (seed ${seed}, mu 4, sigma 1.2), as bench/saturation.ts`,
    batching: BATCHING,
    batches,
    paddedTokens: batches.reduce((sum, [n, longest]) => sum + n * longest, 0),
  };
}

export const BATCH_SHAPES_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'batches.json');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(BATCH_SHAPES_FILE, `${JSON.stringify(batchShapes())}\n`);
  console.log(`wrote ${BATCH_SHAPES_FILE}`);
}
