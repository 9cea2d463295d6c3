import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalHome, openHome } from '../../cli/home.ts';
import { runLocalPipeline } from '../../cli/local-run.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { KillSwitch } from '../faults/support/kill-switch.ts';
import { redriveRun } from '../faults/support/redrive-run.ts';
import { readTable } from '../faults/support/run-tables.ts';

/** A table's rows without the run id, in a stable order. */
const rowsOf = (rows: Record<string, unknown>[]) =>
  rows
    .map(({ run_id: _run, ...row }) => JSON.stringify(row))
    .sort()
    .map((row) => JSON.parse(row) as Record<string, unknown>);

describe('a recommend run killed at each write from the end of its ingest stage on', () => {
  let work: string;
  let pipelines: string;
  let input: string;
  let config: PipelineConfig;
  let reference: RunSummary;
  let referenceRows: Record<string, unknown>[];
  let referenceWrites: string[];

  const run = (home: LocalHome) =>
    runLocalPipeline({ home, config, paths: [input], threads: 0, log: () => {} });

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-recommend-crash-'));
    pipelines = path.join(work, 'pipelines');
    input = path.join(work, 'interactions.csv');
    const sample = (await readFile('events/data/interactions-sample.csv', 'utf8')).trim().split('\n');
    await writeFile(input, `${[...sample.slice(0, 401), ',i001,4,1768090819'].join('\n')}\n`);
    const shipped = JSON.parse(await readFile('pipelines/recommend.json', 'utf8'));
    await mkdir(pipelines);
    await writeFile(
      path.join(pipelines, 'recs.json'),
      JSON.stringify({
        ...shipped,
        name: 'recs',
        planning: { targetUnitTokens: 250 },
        sharding: { targetUnitWork: 300, method: 'greedy' },
        workers: { maxConcurrency: 2, maxReceiveCount: 2 },
      }),
    );
    config = await loadPipelineConfig(pipelines, 'recs');
    const counting = new KillSwitch(Number.POSITIVE_INFINITY);
    const home = counting.home(openHome(path.join(work, 'reference')));
    reference = (await run(home)).summary;
    referenceRows = rowsOf(await readTable(home.store, 'recommendations', 'recs', reference.runId));
    referenceWrites = counting.writes;
  }, 60_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('has writes to kill at in the ingest merge, the stage move, the similarity units and the last finalize', () => {
    expect(reference.status).toBe('succeeded');
    expect(reference.stages?.map((s) => [s.name, s.units > 1])).toEqual([
      ['ingest', true],
      ['similarity', true],
    ]);
    expect(reference.counts.rejected).toBe(1);
    expect(referenceRows.length).toBe(reference.recommendations!.rows);
    for (const part of ['recommend/index.bin', 'recommend/shards.bin', 'recommend/ingest.json'])
      expect(referenceWrites.some((w) => w.endsWith(part))).toBe(true);
    expect(referenceWrites).toContain('run store: startStage');
    expect(referenceWrites.some((w) => w.includes('results/recommendations/'))).toBe(true);
    expect(referenceWrites.at(-1)).toBe('run store: finishRun');
  });

  it('is finished by a redrive --resume with the same recommendations, counts and evaluation', async () => {
    const failures: string[] = [];
    // One kill per kind of write: a second shard's part is the same case as the first's.
    const kindOf = (write: string) =>
      write.replace(/r-\d{8}T\d{6}Z-[0-9a-f]+/g, 'RUN').replace(/similarity-\d+/g, 'similarity-N');
    const killPoints = referenceWrites.flatMap((write, i) =>
      referenceWrites.findIndex((w) => kindOf(w) === kindOf(write)) === i ? [i + 1] : [],
    );
    expect(killPoints.length).toBeGreaterThanOrEqual(8);
    for (const killAt of killPoints) {
      const label = `killed at write ${killAt} (${referenceWrites[killAt - 1]})`;
      const dir = path.join(work, `kill-${killAt}`);
      const kill = new KillSwitch(killAt);
      await expect(run(kill.home(openHome(dir))), label).rejects.toThrow();
      const [stopped] = await openHome(dir).runs.listRuns();
      expect(stopped?.status, label).toBe('running');

      const resumed = await redriveRun(stopped!.runId, { home: dir, pipelines }, { resume: true });
      if (resumed.code !== 0) {
        failures.push(`${label}: redrive exit ${resumed.code}: ${resumed.err.join(' | ')}`);
        continue;
      }
      const after = openHome(dir);
      const summary = await after.runs.getSummary(stopped!.runId);
      expect(summary?.status, label).toBe('succeeded');
      expect(summary?.counts, label).toEqual(reference.counts);
      expect(summary?.recommendations, label).toEqual(reference.recommendations);
      const rows = await readTable(after.store, 'recommendations', 'recs', stopped!.runId);
      expect(rowsOf(rows), label).toEqual(referenceRows);
      const runRows = await readTable(after.store, 'runs', 'recs', stopped!.runId);
      expect(
        runRows.map((r) => r.status),
        label,
      ).toEqual(['succeeded']);
    }
    expect(failures).toEqual([]);
  }, 300_000);
});
