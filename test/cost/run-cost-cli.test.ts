import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../shared/domain/types.ts';
import { sluice } from '../support/cli.ts';

describe('the cost of a local run', () => {
  let work: string;
  let home: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-cost-'));
    home = path.join(work, 'home');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('shows a cost block, an estimate priced as if deployed, whose parts add up to its total', async () => {
    const run = await sluice(
      'run',
      'events/data/docs-sample.jsonl',
      '--pipeline',
      'docs',
      '--home',
      home,
      '--json',
    );
    expect(run.code).toBe(0);
    const summary = run.json<RunSummary>();
    const cost = summary.cost;
    if (!cost) throw new Error(`no cost in the summary: ${summary.costUnknown}`);
    expect(cost).toMatchObject({ currency: 'USD', estimate: true, region: 'us-east-1' });
    const micros = (usd: number) => Math.round(usd * 1e6);
    expect(micros(cost.total)).toBe(
      micros(cost.endpoint) + micros(cost.lambda) + micros(cost.requests) + micros(cost.storage),
    );
    // Measured: the docs pipeline calls its ml.g5.xlarge endpoint, and its one unit ran
    // at the configured 2048 MiB, reading and writing objects and the run store.
    expect(cost.usage.instanceType).toBe('ml.g5.xlarge');
    // As if deployed: the local server served at once, so the copy's cold start is the
    // type's published one (216 s for an ml.g5.xlarge), added to the local lease's hold.
    expect(cost.usage.assumedColdStartSeconds).toBe(216);
    expect(cost.usage.endpointSeconds).toBeGreaterThan(216);
    expect(cost.usage.endpointSeconds).toBeLessThan(216 + 60);
    expect(cost.basis.endpoint).toContain('cold start it would pay deployed');
    expect(cost.usage.lambdaGbSeconds).toBeGreaterThan(0);
    expect(cost.usage.lambdaRequests).toBe(summary.counts.units + 2);
    expect(cost.usage.s3Gets).toBeGreaterThan(0);
    expect(cost.usage.s3Puts).toBeGreaterThan(0);
    expect(cost.usage.dynamoWrites).toBeGreaterThanOrEqual(2);
    expect(cost.usage.bytesStored).toBeGreaterThan(0);
    expect(cost.total).toBeGreaterThan(0);

    // summary.json carries the same block.
    const stored = JSON.parse(
      await readFile(path.join(home, 'bucket', 'runs', 'docs', summary.runId, 'summary.json'), 'utf8'),
    ) as RunSummary;
    expect(stored.cost).toEqual(cost);

    // And so does the run's row of the `runs` table.
    const row = await sluice(
      'query',
      `select cost_usd, cost_endpoint_usd, cost_lambda_usd, cost_requests_usd, cost_storage_usd, cost_kind from runs where run_id = '${summary.runId}'`,
      '--home',
      home,
      '--json',
    );
    expect(JSON.parse(row.out.at(-1) ?? '[]')).toEqual([
      {
        cost_usd: cost.total,
        cost_endpoint_usd: cost.endpoint,
        cost_lambda_usd: cost.lambda,
        cost_requests_usd: cost.requests,
        cost_storage_usd: cost.storage,
        cost_kind: 'estimate',
      },
    ]);
  });

  it('prints the cost in one line of the human summary', async () => {
    const run = await sluice(
      'run',
      'events/data/credit-sample.csv',
      '--pipeline',
      'credit-risk',
      '--home',
      home,
    );
    expect(run.code).toBe(0);
    expect(run.out.filter((l) => l.startsWith('cost:'))).toEqual([
      expect.stringMatching(
        /^cost: {4}\$\d+\.\d{6}, estimated as if deployed in us-east-1 \(endpoint \$[\d.]+, lambda \$[\d.]+, requests \$[\d.]+, storage \$[\d.]+\)$/,
      ),
    ]);
  });
});
