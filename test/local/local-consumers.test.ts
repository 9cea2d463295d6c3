import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { startLocalRuntime } from '../../cli/local-run.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import type { RunProgressEvents } from '../../cli/progress/run-progress.ts';
import { parseEmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import { BreakableEmbedder } from '../support/breakable-embedder.ts';

const config = parseEmbedPipelineConfig({
  name: 'cons',
  kind: 'embed',
  endpoint: { name: 'cons-embed', dimension: 8, maxRetries: 0, timeoutMs: 10_000 },
  chunking: { maxTokens: 32, overlapTokens: 4 },
  planning: { targetUnitTokens: 200 },
  workers: { maxConcurrency: 2, maxReceiveCount: 2 },
});

const docs = Array.from({ length: 24 }, (_, i) =>
  JSON.stringify({ id: `d${i}`, text: `${i === 5 ? 'POISON ' : ''}document ${i} about units`.repeat(3) }),
).join('\n');

/** Progress events as they came, by kind. */
class RecordedProgress implements RunProgressEvents {
  readonly phases: string[] = [];
  readonly settled: { unitId: string; status: string }[] = [];
  phase(text: string): void {
    this.phases.push(text);
  }
  queued(): void {}
  unitSettled(unit: { unitId: string }, outcome: { status: string }): void {
    this.settled.push({ unitId: unit.unitId, status: outcome.status });
  }
  endpointCounters(): void {}
}

/**
 * The local runtime's queue consumers (cli/local-run.ts LocalConsumers) on the main thread:
 * what each delivery, finalize and dead letter does to the run store, the runtime's
 * summaries, the log and the progress display.
 */
describe('the local runtime consumers', () => {
  let dir: string;
  let server: ModelServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-consumers-'));
    server = await startModelServer({
      backend: new BreakableEmbedder(8, {
        broken: true,
        fails: (inputs) => inputs.some((t) => t.includes('POISON')),
      }),
    });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function runConsumers(name: string, progress?: RecordedProgress) {
    const home = openHome(path.join(dir, name));
    const log: string[] = [];
    const runtime = await startLocalRuntime({
      home,
      config,
      endpointUrl: server.url,
      log: (line) => log.push(line),
      threads: 0,
      ...(progress && { progress }),
    });
    try {
      await home.store.put('incoming/cons/docs.jsonl', docs);
      const { run, units } = await planRun(
        { store: home.store, runs: home.runs, queue: runtime.queue },
        config,
        {
          runId: 'r-20260101T000000Z-0000cc',
          trigger: 'local',
          keys: ['incoming/cons/docs.jsonl'],
          now: new Date('2026-01-01T00:00:00Z'),
        },
      );
      await runtime.queue.drain();
      return { runtime, run, units, stored: await home.runs.listUnits(run.runId), log };
    } finally {
      await runtime.close();
    }
  }

  it('logs each unit, marks the dead-lettered one failed and keeps the run summary by run id', async () => {
    const { runtime, run, units, stored, log } = await runConsumers('plain');
    expect(units.length).toBeGreaterThan(1);
    const failed = stored.filter((u) => u.status === 'failed');
    expect(failed).toEqual([
      expect.objectContaining({ attempts: 2, lastError: expect.stringContaining('GPU fell over') }),
    ]);
    const poisoned = failed[0]!.unitId;
    // Both deliveries threw (no outcome to log); the dead-letter consumer marked the unit failed.
    expect(log.some((l) => l.startsWith(`unit ${poisoned}`))).toBe(false);
    for (const unit of stored.filter((u) => u.status === 'succeeded'))
      expect(log).toContainEqual(
        expect.stringMatching(new RegExp(`^unit ${unit.unitId}: \\d+ records, .*, 0 rejected$`)),
      );
    expect(runtime.summaries.get(run.runId)).toMatchObject({
      status: 'failed',
      failedUnits: [{ unitId: poisoned }],
    });
  });

  it('with a progress display: each unit settles there (the dead-lettered one once, failed), no line per unit', async () => {
    const progress = new RecordedProgress();
    const { run, stored, log } = await runConsumers('progress', progress);
    const poisoned = stored.find((u) => u.status === 'failed')!.unitId;
    // Its deliveries threw: only the dead-letter consumer reports it, once, as failed.
    expect(progress.settled.filter((s) => s.unitId === poisoned).map((s) => s.status)).toEqual(['failed']);
    for (const unit of stored.filter((u) => u.status === 'succeeded'))
      expect(progress.settled).toContainEqual({ unitId: unit.unitId, status: 'succeeded' });
    expect(progress.phases).toContain(`finalizing run ${run.runId}`);
    expect(log.filter((l) => /^unit \S+: \d+ records/.test(l))).toEqual([]);
  });
});
