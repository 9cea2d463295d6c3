import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PipelineEndpointRegistry } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary, WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { ScoringEndpoint } from '../../shared/ports/scoring-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';

/** A queue that keeps what is sent, for the test to deliver (or not). */
class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  sent: WorkUnit[] = [];
  finalizeRequests: string[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
    this.sent.push(...units);
  }
  async requestFinalize(runId: string) {
    this.finalizeRequests.push(runId);
  }
}

const RUN_ID = 'r-20261207T030000Z-abcdef';
const SOURCE = 'incoming/credit-risk/sample.csv';
const FITTED = 'models/credit-risk/fitted-here.json';
const NOW = new Date('2026-12-07T03:00:00Z');

/**
 * A score pipeline with no stored statistics runs `fit` then `score` as one run: the
 * engine's stages driven through processUnit and finalizeRun over ports (the model is
 * evaluated in the worker, so no server is needed).
 */
describe('a fit-then-score run', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let config: ScorePipelineConfig;
  /** Units of the score stage whose every delivery fails while set. */
  let failing: Set<string>;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-stages-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    failing = new Set();
    const raw = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
    raw.model.hosting = 'in-worker';
    raw.featureStats = { key: FITTED, refit: false };
    raw.planning = { targetUnitTokens: 5_000 };
    config = parsePipelineConfig(raw) as ScorePipelineConfig;
    for (const name of ['occupation-embedding.json', 'model.json'])
      await store.put(`models/credit-risk/${name}`, await readFile(`pipelines/models/credit-risk/${name}`));
    await store.put(SOURCE, await readFile('events/data/credit-sample.csv'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  function depsFor(unit: WorkUnit) {
    const endpoints = new PipelineEndpointRegistry(
      () => {
        throw new Error('in-worker scoring must not make a SageMaker client');
      },
      { store },
    ).endpointsFor(config);
    const real = endpoints.scoringEndpoint!;
    const scoringEndpoint: ScoringEndpoint = {
      score: (csv, stats) =>
        failing.has(unit.unitId) ? Promise.reject(new Error('model crashed')) : real.score(csv, stats),
    };
    return { store, runs, queue, tokenCounter: new EstimatingTokenCounter(), scoringEndpoint };
  }

  const finalize = (runId = RUN_ID) =>
    finalizeRun({ store, runs, queue, pipelines: new Map([[config.name, config]]) }, runId, NOW);

  /** Delivers every queued unit once (a failure is its last attempt), then every finalize request. */
  async function drain(): Promise<RunSummary | undefined> {
    let summary: RunSummary | undefined;
    while (queue.units.length > 0 || queue.finalizeRequests.length > 0) {
      const unit = queue.units.shift();
      if (unit) {
        await processUnit(depsFor(unit), config, unit, { isLastAttempt: true }).catch(() => undefined);
        continue;
      }
      summary = (await finalize(queue.finalizeRequests.shift())) ?? summary;
    }
    return summary;
  }

  async function plan(): Promise<readonly WorkUnit[]> {
    const { units, run } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 's3',
      keys: [SOURCE],
      now: NOW,
    });
    expect(run).toMatchObject({ stage: 'fit', stages: ['fit', 'score'] });
    expect(units.length).toBeGreaterThan(1);
    return units;
  }

  /** Works the fit stage's units only, leaving finalize to the test. */
  async function workFitStage(): Promise<void> {
    for (let unit = queue.units.shift(); unit; unit = queue.units.shift())
      await processUnit(depsFor(unit), config, unit, { isLastAttempt: true });
  }

  it('fits, then scores in the same run, with the fitted statistics written between the stages', async () => {
    const fitUnits = await plan();
    const summary = await drain();

    expect(summary).toMatchObject({ runId: RUN_ID, status: 'succeeded' });
    expect(summary?.stages?.map((s) => [s.name, s.units, s.failedUnits])).toEqual([
      ['fit', fitUnits.length, 0],
      ['score', fitUnits.length, 0],
    ]);
    expect(summary?.counts).toMatchObject({ units: fitUnits.length, failedUnits: 0, scored: 2000 });
    expect(JSON.parse(new TextDecoder().decode(await store.get(FITTED)))).toMatchObject({ rows: 2002 });
    expect(await runs.listRuns()).toHaveLength(1);
    expect(await runs.getRun(RUN_ID)).toMatchObject({ stage: 'score', totalUnits: 2 * fitUnits.length });
    const stages = (await runs.listUnits(RUN_ID)).map((u) => u.stage);
    expect(stages.filter((s) => s === 'fit')).toHaveLength(fitUnits.length);
    expect(stages.filter((s) => s === 'score')).toHaveLength(fitUnits.length);
  });

  it('plans the score stage once when finalize at the end of fit is repeated or races', async () => {
    const fitUnits = await plan();
    await workFitStage();
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    queue.finalizeRequests = [];

    const outcomes = await Promise.all([finalize(), finalize()]);

    expect(outcomes).toEqual([undefined, undefined]);
    const expected = fitUnits.map((u) => `score-${u.unitId}`).sort();
    expect(
      queue.sent
        .filter((u) => u.stage === 'score')
        .map((u) => u.unitId)
        .sort(),
    ).toEqual(expected);
    expect(await runs.getRun(RUN_ID)).toMatchObject({ stage: 'score', totalUnits: 2 * fitUnits.length });

    // A request redelivered after the move sends the units not delivered yet again (it
    // cannot tell them from units a dead finalize never sent); each is still worked once.
    await finalize();
    const stored = (await runs.listUnits(RUN_ID)).filter((u) => u.stage === 'score');
    expect(stored.map((u) => u.unitId).sort()).toEqual(expected);
    const summary = await drain();
    expect(summary).toMatchObject({ status: 'succeeded', counts: { units: fitUnits.length, scored: 2000 } });
  });

  it('takes up a score stage whose finalize died after moving the run into it', async () => {
    const fitUnits = await plan();
    await workFitStage();
    queue.finalizeRequests = [];
    // The finalize that merges the fit stage and moves the run dies before storing the units.
    const stored = runs;
    runs = new Proxy(stored, {
      get: (target, property, receiver) =>
        property === 'addStageUnits'
          ? () => Promise.reject(new Error('killed'))
          : Reflect.get(target, property, receiver),
    });
    await expect(finalize()).rejects.toThrow('killed');
    runs = stored;
    expect(await runs.getRun(RUN_ID)).toMatchObject({ stage: 'score' });
    expect(queue.units).toEqual([]);

    expect(await finalize()).toBeUndefined(); // the redelivered request

    expect(queue.units.map((u) => u.unitId).sort()).toEqual(fitUnits.map((u) => `score-${u.unitId}`).sort());
    const summary = await drain();
    expect(summary).toMatchObject({ status: 'succeeded', counts: { scored: 2000 } });
  });

  it('fails in its score stage, and a redrive of that stage alone finishes the run', async () => {
    const fitUnits = await plan();
    failing.add(`score-${fitUnits[0]!.unitId}`);
    const failed = await drain();

    expect(failed).toMatchObject({ runId: RUN_ID, status: 'failed' });
    expect(failed?.failedUnits).toEqual([
      { unitId: `score-${fitUnits[0]!.unitId}`, lastError: expect.stringContaining('model crashed') },
    ]);
    expect(failed?.stages?.map((s) => [s.name, s.failedUnits])).toEqual([
      ['fit', 0],
      ['score', 1],
    ]);

    failing.clear();
    const reopening = await runs.reopenFailedRun(RUN_ID);
    expect(reopening.units.map((u) => u.descriptor?.stage)).toEqual(['score']);
    const fitDeliveries = queue.sent.filter((u) => u.stage === 'fit').length;
    await queue.sendUnits(reopening.units.map((u) => u.descriptor!));
    const summary = await drain();

    expect(summary).toMatchObject({ runId: RUN_ID, status: 'succeeded', counts: { scored: 2000 } });
    expect(queue.sent.filter((u) => u.stage === 'fit')).toHaveLength(fitDeliveries);
    expect(summary?.stages?.map((s) => s.name)).toEqual(['fit', 'score']);
  });

  it('reads a fit run stored before stages as its fit stage, and goes on to score it', async () => {
    const fitUnits = await plan();
    // What an older planner stored: no stage on the run or its units, `task: 'fit'` instead.
    const file = JSON.parse(await readFile(path.join(dir, `${RUN_ID}.json`), 'utf8'));
    const { stage: _s, stages: _ss, ...oldRun } = file.run;
    file.run = { ...oldRun, task: 'fit' };
    for (const unit of Object.values(file.units) as { stage?: string; descriptor: WorkUnit }[]) {
      delete unit.stage;
      const { stage: _d, ...descriptor } = unit.descriptor;
      unit.descriptor = { ...descriptor, task: 'fit' };
    }
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, `${RUN_ID}.json`), JSON.stringify(file));
    runs = new LocalRunStore(dir);
    queue.units = queue.units.map(({ stage: _x, ...unit }) => ({ ...unit, task: 'fit' as const }));

    const summary = await drain();

    expect(summary).toMatchObject({ runId: RUN_ID, status: 'succeeded', counts: { scored: 2000 } });
    expect(summary?.stages?.map((s) => [s.name, s.units])).toEqual([
      ['fit', fitUnits.length],
      ['score', fitUnits.length],
    ]);
  });
});
