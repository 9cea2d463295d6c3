import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pricesFor } from '../../shared/cost/pricing.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { runGenerateTriage } from '../support/generate-run.ts';
import { useScratchFolder } from '../support/scratch-folder.ts';

const usEast = pricesFor('us-east-1');

describe('the prompt cache in a generate run’s cost', () => {
  const work = useScratchFolder('sluice-cache-cost-');

  it('prices the cache as DynamoDB request units, not an S3 PUT per answer, so requests cost less than before', async () => {
    const run = await runGenerateTriage({ home: path.join(work.dir, 'home') });
    expect(run.code).toBe(0);
    const summary = run.json<RunSummary>();
    const answered = Number(summary.counts.generated);
    expect(answered).toBe(47);
    const cost = summary.cost;
    if (!cost) throw new Error(`no cost in the summary: ${summary.costUnknown}`);
    const { usage } = cost;
    // No PUT per answer: the unit's own objects only (parts, id list, rejects, summary files).
    expect(usage.s3Puts).toBeLessThan(answered);
    // Each fresh answer: 0.5 read unit for the miss, at least 1 write unit (a 128-token answer
    // fits in 1 KB), and one GET of the old S3 cache.
    expect(usage.dynamoReads).toBeGreaterThanOrEqual(0.5 * answered);
    expect(usage.dynamoWrites).toBeGreaterThanOrEqual(answered);
    expect(usage.s3Gets).toBeGreaterThanOrEqual(answered);
    // The same run priced as the S3 cache was: a PUT per answer instead of the table's units.
    const cacheReads = 0.5 * answered;
    const cacheWrites = answered;
    const asBefore =
      cost.requests -
      cacheReads * usEast.dynamoReadRequestUnit.usd -
      cacheWrites * usEast.dynamoWriteRequestUnit.usd +
      (answered / 1000) * usEast.s3PutPer1000.usd;
    expect(cost.requests).toBeLessThan(asBefore);
  });
});
