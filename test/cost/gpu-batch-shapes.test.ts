import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BATCH_SHAPES_FILE, batchShapes } from '../../bench/gpu/batch-shapes.ts';

describe('the prepared GPU throughput check (bench/gpu)', () => {
  it('ships the batch shapes a worker cuts today', () => {
    const shipped = JSON.parse(readFileSync(BATCH_SHAPES_FILE, 'utf8'));
    // Regenerate with `npx tsx bench/gpu/batch-shapes.ts` when chunking or batching changes.
    expect(shipped).toEqual(JSON.parse(JSON.stringify(batchShapes())));
    expect(shipped.batches.every(([n, longest]: [number, number]) => n <= 32 && longest <= 256)).toBe(true);
  });

  it('reads them in the GPU script without PyTorch (--check)', () => {
    const out = execFileSync('python3', ['bench/gpu/embedding-throughput.py', '--check'], {
      encoding: 'utf8',
    });
    const { batches, paddedTokens } = batchShapes();
    expect(out.trim()).toBe(
      `${batches.length} batches, ${paddedTokens} padded tokens, model bge-small-en-v1.5 (12, 384, 12, 1536)`,
    );
  });
});
