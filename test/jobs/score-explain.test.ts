import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PipelineEndpointRegistry } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary, WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { TreeShapExplainer } from '../../shared/scoring/xgboost/tree-shap.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { parquetFile } from '../ingest/factories.ts';

class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  finalizeRequests: string[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize(runId: string) {
    this.finalizeRequests.push(runId);
  }
}

const RUN_ID = 'r-20261207T030000Z-abcdef';
const SOURCE = 'incoming/credit-risk/sample.csv';
const NOW = new Date('2026-12-07T03:00:00Z');
const INPUTS = [
  'age',
  'income',
  'debt_ratio',
  'employment_years',
  'late_payments',
  'region',
  'product',
  'occupation',
];

interface Reason {
  feature: string;
  contribution: number;
  value: unknown;
}

/**
 * Reason codes and pass-through columns written by a whole score run (plan, work,
 * finalize over ports, the model evaluated in the worker), read back from its Parquet parts.
 */
describe('a score run with explain.topK and output.passThrough', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-explain-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    for (const name of ['occupation-embedding.json', 'model.json', 'feature-stats.json'])
      await store.put(`models/credit-risk/${name}`, await readFile(`pipelines/models/credit-risk/${name}`));
    await store.put(SOURCE, await readFile('events/data/credit-sample.csv'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function configWith(extra: Record<string, unknown>): Promise<ScorePipelineConfig> {
    const raw = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
    raw.model.hosting = 'in-worker';
    raw.planning = { targetUnitTokens: 20_000 };
    return parsePipelineConfig({ ...raw, ...extra }) as ScorePipelineConfig;
  }

  async function run(
    config: ScorePipelineConfig,
    source = SOURCE,
  ): Promise<{ summary: RunSummary | undefined; rows: Record<string, unknown>[] }> {
    await planRun({ store, runs, queue }, config, { runId: RUN_ID, trigger: 's3', keys: [source], now: NOW });
    const endpoints = new PipelineEndpointRegistry(
      () => {
        throw new Error('in-worker scoring must not make a SageMaker client');
      },
      { store },
    ).endpointsFor(config);
    const deps = {
      store,
      runs,
      queue,
      tokenCounter: new EstimatingTokenCounter(),
      scoringEndpoint: endpoints.scoringEndpoint!,
    };
    let summary: RunSummary | undefined;
    while (queue.units.length > 0 || queue.finalizeRequests.length > 0) {
      const unit = queue.units.shift();
      if (unit) await processUnit(deps, config, unit, { isLastAttempt: true }).catch(() => undefined);
      else
        summary =
          (await finalizeRun(
            { store, runs, queue, pipelines: new Map([[config.name, config]]) },
            queue.finalizeRequests.shift()!,
            NOW,
          )) ?? summary;
    }
    const rows: Record<string, unknown>[] = [];
    for await (const info of store.list('results/scores/')) {
      const bytes = (await store.get(info.key))!;
      rows.push(...(await parquetReadObjects({ file: bytes.slice().buffer })));
    }
    rows.sort((a, b) => Number(a.line) - Number(b.line));
    return { summary, rows };
  }

  it('writes each row its reasons: every input column, largest first, summing with the bias to the margin', async () => {
    const { summary, rows } = await run(await configWith({ explain: { topK: INPUTS.length } }));
    expect(summary).toMatchObject({ status: 'succeeded', counts: { scored: 2000 } });
    expect(rows).toHaveLength(2000);
    const model = await readFile('pipelines/models/credit-risk/model.json', 'utf8');
    const bias = TreeShapExplainer.fromJson(model).bias[0]!;
    const csv = (await readFile('events/data/credit-sample.csv', 'utf8')).trim().split('\n');
    const header = csv[0]!.split(',');
    for (const row of rows) {
      const reasons = JSON.parse(row.reasons as string) as Reason[];
      expect(reasons.length).toBeGreaterThan(0);
      expect(reasons.length).toBeLessThanOrEqual(INPUTS.length);
      for (const r of reasons) expect(INPUTS).toContain(r.feature);
      const sizes = reasons.map((r) => Math.abs(r.contribution));
      expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
      // Every input with a non-zero contribution is listed, so they account for the margin.
      const margin = reasons.reduce((sum, r) => sum + r.contribution, bias);
      const score = row.score as number;
      const logit = Math.log(score / (1 - score));
      // The score is float32 (as XGBoost computes it); its logit carries that rounding.
      expect(Math.abs(margin - logit)).toBeLessThan(1e-5 / (score * (1 - score)) + 1e-6);
      // Each reason's value is the row's input as read (CSV: text).
      const fields = csv[Number(row.line) - 1]!.split(',');
      for (const r of reasons) {
        const read = fields[header.indexOf(r.feature)];
        expect(r.value).toBe(read === '' ? null : read);
      }
    }
  });

  it('keeps only the top K when K is smaller than the inputs', async () => {
    const { rows } = await run(await configWith({ explain: { topK: 2 } }));
    const first = JSON.parse(rows[0]!.reasons as string) as Reason[];
    expect(first).toHaveLength(2);
    expect(Math.abs(first[0]!.contribution)).toBeGreaterThanOrEqual(Math.abs(first[1]!.contribution));
  });

  it('leaves reasons null without explain', async () => {
    const { rows } = await run(await configWith({}));
    expect(rows).toHaveLength(2000);
    expect(rows.every((r) => r.reasons === null)).toBe(true);
  });

  it('copies pass-through columns into scores, typed as configured, a value of the wrong type rejected', async () => {
    const { summary, rows } = await run(
      await configWith({
        output: {
          passThrough: [
            'region',
            { column: 'defaulted', type: 'bigint' },
            { column: 'income', type: 'double' },
          ],
        },
      }),
    );
    // The sample's bad rows: one short CSV row, "thirty" as an age, "1,2e" as an income
    // (now a pass-through double too: rejected by it, as it was by the feature).
    expect(summary).toMatchObject({ status: 'succeeded', counts: { scored: 2000, rejected: 3 } });
    const first = rows[0]!;
    expect(first).toMatchObject({
      region: 'north',
      defaulted: 0n,
      income: 32941,
    });
    expect(rows.every((r) => typeof r.region === 'string' || r.region === null)).toBe(true);
    expect(rows.every((r) => typeof r.income === 'number' || r.income === null)).toBe(true);
  });

  it('writes null for a pass-through key a JSONL record lacks, typed as read otherwise', async () => {
    const source = 'incoming/credit-risk/few.jsonl';
    const customer = {
      age: 47,
      income: 32941,
      debt_ratio: 0.2378,
      employment_years: 5,
      late_payments: 0,
      region: 'north',
      product: 'overdraft',
      occupation: 'engineer',
    };
    await store.put(
      source,
      [
        { ...customer, customer_id: 'c1', vip: true, tier: 'gold' },
        { ...customer, customer_id: 'c2', tier: 3 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const { summary, rows } = await run(
      await configWith({ output: { passThrough: ['tier', { column: 'vip', type: 'boolean' }] } }),
      source,
    );
    expect(summary).toMatchObject({ status: 'succeeded', counts: { scored: 2, rejected: 0 } });
    expect(rows.map((r) => [r.record_id, r.tier, r.vip])).toEqual([
      ['c1', 'gold', true],
      ['c2', '3', null],
    ]);
  });

  it('stops the run at plan with one line when a pass-through column is not in the CSV header (it used to fail every unit)', async () => {
    const config = await configWith({ output: { passThrough: ['customer_id', 'regoin'] } });
    await expect(
      planRun({ store, runs, queue }, config, { runId: RUN_ID, trigger: 's3', keys: [SOURCE], now: NOW }),
    ).rejects.toThrow(
      /^output\.passThrough reads column "regoin", which incoming\/credit-risk\/sample\.csv does not have \(its columns: "customer_id", "age", .*\); did you mean "region"\?$/,
    );
    expect(queue.units).toHaveLength(0);
    expect(await runs.getRun(RUN_ID)).toBeUndefined();
  });

  it('checks pass-through columns against a Parquet schema at plan as well', async () => {
    const [header, ...lines] = (await readFile('events/data/credit-sample.csv', 'utf8'))
      .split('\n')
      .slice(0, 4);
    const names = header!.split(',');
    const columns = Object.fromEntries(names.map((name, i) => [name, lines.map((l) => l.split(',')[i]!)]));
    const parquet = 'incoming/credit-risk/sample.parquet';
    await store.put(parquet, parquetFile(columns, 10));
    const config = await configWith({ output: { passThrough: ['Region'] } });
    await expect(
      planRun({ store, runs, queue }, config, { runId: RUN_ID, trigger: 's3', keys: [parquet], now: NOW }),
    ).rejects.toThrow(
      /^output\.passThrough reads column "Region", which incoming\/credit-risk\/sample\.parquet does not have .*; did you mean "region"\?$/,
    );
    expect(queue.units).toHaveLength(0);
  });
});
