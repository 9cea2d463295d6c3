import { cp, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalHome, openHome } from '../../cli/home.ts';
import { runLocalPipeline } from '../../cli/local-run.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { runRowKey, runSummaryKey } from '../../shared/output/keys.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';
import { KillSwitch } from './support/kill-switch.ts';
import { redriveRun } from './support/redrive-run.ts';
import { readTable } from './support/run-tables.ts';

const PIPELINE = {
  name: 'fin',
  kind: 'embed',
  endpoint: { name: 'fin-embed', dimension: 16, maxRetries: 0, timeoutMs: 10_000 },
  chunking: { maxTokens: 32, overlapTokens: 4 },
  planning: { targetUnitTokens: 400 },
  workers: { maxConcurrency: 2, maxReceiveCount: 2 },
};

const docs = (count: number, salt = '') =>
  Array.from({ length: count }, (_, i) => ({
    id: `d${String(i).padStart(3, '0')}`,
    text: `document ${i}${salt} about finalize, crashes and the runs table. `.repeat(1 + (i % 4)),
  }));

describe('finalize killed at each of its writes', () => {
  let work: string;
  let pipelines: string;
  let template: string;
  let server: ModelServer;
  let config: PipelineConfig;
  let inputs: string[];
  /** The second run, finalized without a crash: what every resumed run must equal. */
  let reference: RunSummary;
  let referenceWrites: string[];
  /** The template's run: ids sort by start second, then by a random suffix, so position cannot tell the runs apart. */
  let firstRunId: string;

  const secondRun = async (home: LocalHome) =>
    runLocalPipeline({
      home,
      config,
      paths: inputs,
      endpointUrl: server.url,
      threads: 0,
      log: () => {},
    });

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-finalize-crash-'));
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, 'fin.json'), JSON.stringify(PIPELINE));
    config = await loadPipelineConfig(pipelines, 'fin');
    server = await startModelServer({ backend: new HashEmbedder(16) });
    inputs = [path.join(work, 'a.jsonl'), path.join(work, 'b.jsonl')];
    // The first run leaves manifests behind, so the second one diffs and flips their pointers.
    template = path.join(work, 'template');
    await writeFile(inputs[0]!, jsonl(docs(24)));
    await writeFile(inputs[1]!, jsonl(docs(12, ' b').map((d) => ({ ...d, id: `b-${d.id}` }))));
    const first = await sluice(
      'run',
      ...inputs,
      '--pipeline',
      'fin',
      '--home',
      template,
      '--pipelines',
      pipelines,
      '--endpoint-url',
      server.url,
      '--threads',
      '0',
      '--json',
    );
    expect(first.code, first.err.join('\n')).toBe(0);
    firstRunId = (first.json() as RunSummary).runId;
    // The second run: documents gone from a, one edited in b, and one of a's ids again in b
    // (the duplicate-id rule rewrites the part that holds the loser).
    await writeFile(inputs[0]!, jsonl(docs(24).slice(0, 18)));
    await writeFile(
      inputs[1]!,
      jsonl([
        ...docs(12, ' b').map((d, i) => ({ ...d, id: `b-${d.id}`, ...(i === 3 ? { text: 'edited' } : {}) })),
        { id: 'd001', text: 'the same id as a document of a.jsonl' },
      ]),
    );

    const home = path.join(work, 'reference');
    await cp(template, home, { recursive: true });
    const counting = new KillSwitch(Number.POSITIVE_INFINITY);
    reference = (await secondRun(counting.home(openHome(home)))).summary;
    referenceWrites = counting.writes;
  });
  afterAll(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('has writes to kill at: manifests, their pointers, a duplicate-id rewrite, sources, summary, runs row, run store', () => {
    expect(reference.status).toBe('succeeded');
    expect(reference.counts.removedDocuments).toBe(6);
    expect(reference.counts.rejected).toBe(1);
    expect(referenceWrites.some((w) => w.includes('results/embeddings/'))).toBe(true);
    expect(referenceWrites.at(-1)).toBe('run store: finishRun');
    expect(referenceWrites.filter((w) => w.includes('summary.json'))).toHaveLength(1);
    expect(referenceWrites.filter((w) => w.includes('results/runs/'))).toHaveLength(1);
    expect(referenceWrites.filter((w) => w.includes('results/sources/'))).toHaveLength(1);
    expect(referenceWrites.some((w) => w.includes('current.json'))).toBe(true);
    expect(referenceWrites.length).toBeGreaterThanOrEqual(8);
    console.log(`finalize writes killed at, in order:\n  ${referenceWrites.join('\n  ')}`);
  });

  it('a redrive --resume after the kill finishes the run exactly once, with what an uncrashed finalize wrote', async () => {
    const failures: string[] = [];
    for (let killAt = 1; killAt <= referenceWrites.length; killAt++) {
      const label = `killed at write ${killAt} (${referenceWrites[killAt - 1]})`;
      const dir = path.join(work, `kill-${killAt}`);
      await cp(template, dir, { recursive: true });
      const kill = new KillSwitch(killAt);
      await expect(secondRun(kill.home(openHome(dir))), label).rejects.toThrow();
      expect(kill.killed, label).toBe(true);

      const home = openHome(dir);
      const runs = await home.runs.listRuns();
      expect(runs, label).toHaveLength(2);
      const second = runs.find((r) => r.runId !== firstRunId)!;
      const runId = second.runId;
      // Nothing says done before everything is written.
      expect(second.status, label).toBe('running');

      const resumed = await redriveRun(
        runId,
        { home: dir, pipelines },
        { resume: true, endpointUrl: server.url },
      );
      if (resumed.code !== 0) {
        failures.push(`${label}: redrive exit ${resumed.code}: ${resumed.err.join(' | ')}`);
        continue;
      }
      const after = openHome(dir);
      const summary = await after.runs.getSummary(runId);
      expect(summary?.status, label).toBe('succeeded');
      expect(summary?.counts, label).toEqual(reference.counts);
      // A source whose pointer flipped before the kill is reused (its counts kept), not compared again.
      const { compared, reused, ...sourceCounts } = summary!.sources!;
      const { compared: refCompared, reused: refReused, ...refCounts } = reference.sources!;
      expect(sourceCounts, label).toEqual(refCounts);
      expect(compared + reused, label).toBe(refCompared + refReused);
      const summaryJson = JSON.parse(
        new TextDecoder().decode(await after.store.get(runSummaryKey('fin', runId))),
      );
      expect(summaryJson, label).toEqual(summary);
      // Exactly one runs row per run, and it is this finalize's.
      const rows = await readTable(after.store, 'runs', 'fin', '');
      expect(rows.map((r) => r.run_id).sort(), label).toEqual([...new Set(rows.map((r) => r.run_id))].sort());
      expect(
        rows.filter((r) => r.run_id === runId).map((r) => [r.status, Number(r.records)]),
        label,
      ).toEqual([['succeeded', reference.counts.records]]);
      // The tables hold what an uncrashed finalize left: the duplicate's loser only in rejects.
      const embeddings = await readTable(after.store, 'embeddings', 'fin', runId);
      expect(embeddings.length, label).toBe(reference.counts.chunks);
      expect(new Set(embeddings.map((r) => r.chunk_id)).size, label).toBe(embeddings.length);
      const rejects = await readTable(after.store, 'rejects', 'fin', runId);
      expect(
        rejects.map((r) => String(r.reason)),
        label,
      ).toEqual([expect.stringContaining('duplicate id "d001"')]);
      const sources = await readTable(after.store, 'sources', 'fin', runId);
      expect(sources.map((r) => `${r.source_key} ${r.status} ${r.documents}`).sort(), label).toEqual(
        (await referenceSources()).sort(),
      );
      // A second resume finds nothing to do and changes nothing.
      const again = await redriveRun(runId, { home: dir, pipelines }, { resume: true });
      expect(again.code, label).toBe(0);
      expect(again.json().redriven, label).toBe(0);
      expect((await openHome(dir).runs.getSummary(runId))?.finishedAt, label).toBe(summary?.finishedAt);
      await rm(dir, { recursive: true, force: true });
    }
    expect(failures).toEqual([]);
  }, 240_000);

  it('a run marked done without its files (a finalize of an older version killed after the move) gets them back from redrive --resume', async () => {
    const dir = path.join(work, 'reference');
    const home = openHome(dir);
    const summaryKey = runSummaryKey('fin', reference.runId);
    const rowKey = runRowKey('fin', reference.runId);
    await unlink(home.store.pathOf(summaryKey));
    await unlink(home.store.pathOf(rowKey));
    const resumed = await redriveRun(reference.runId, { home: dir, pipelines }, { resume: true });
    expect(resumed.code).toBe(0);
    expect(resumed.json()).toMatchObject({ redriven: 0, restored: [summaryKey, rowKey] });
    expect(JSON.parse(new TextDecoder().decode(await home.store.get(summaryKey)))).toEqual(
      await home.runs.getSummary(reference.runId),
    );
    const rows = await readTable(home.store, 'runs', 'fin', reference.runId);
    expect(rows.map((r) => [r.status, Number(r.records)])).toEqual([['succeeded', reference.counts.records]]);
  });

  async function referenceSources(): Promise<string[]> {
    const rows = await readTable(
      openHome(path.join(work, 'reference')).store,
      'sources',
      'fin',
      reference.runId,
    );
    return rows.map((r) => `${r.source_key} ${r.status} ${r.documents}`);
  }
});

describe('a fit-then-score run killed at each write, the move into its score stage included', () => {
  let work: string;
  let pipelines: string;
  let config: PipelineConfig;
  let reference: RunSummary;
  let referenceWrites: string[];
  const SAMPLE = 'events/data/credit-sample.csv';

  const fitAndScore = (home: LocalHome) =>
    runLocalPipeline({ home, config, pipelinesDir: pipelines, paths: [SAMPLE], threads: 0, log: () => {} });

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-fit-crash-'));
    pipelines = path.join(work, 'pipelines');
    await cp('pipelines', pipelines, { recursive: true });
    const raw = JSON.parse(await readFile(path.join(pipelines, 'credit-risk.json'), 'utf8'));
    raw.featureStats = { key: 'models/credit-risk/fitted-here.json', refit: false };
    await writeFile(path.join(pipelines, 'credit-risk.json'), JSON.stringify(raw));
    config = await loadPipelineConfig(pipelines, 'credit-risk');
    const counting = new KillSwitch(Number.POSITIVE_INFINITY);
    reference = (await fitAndScore(counting.home(openHome(path.join(work, 'reference'))))).summary;
    referenceWrites = counting.writes;
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('is finished by a redrive --resume of its one run, fit and score stages each once', async () => {
    expect(reference.status).toBe('succeeded');
    expect(reference.stages?.map((s) => s.name)).toEqual(['fit', 'score']);
    expect(referenceWrites).toContain('run store: startStage');
    expect(referenceWrites).toContain('run store: addStageUnits');
    const failures: string[] = [];
    for (let killAt = 1; killAt <= referenceWrites.length; killAt++) {
      const label = `killed at write ${killAt} (${referenceWrites[killAt - 1]})`;
      const dir = path.join(work, `kill-${killAt}`);
      const kill = new KillSwitch(killAt);
      await expect(fitAndScore(kill.home(openHome(dir))), label).rejects.toThrow();
      // Killed anywhere, fit and score are one run, left running: in its fit stage, or in
      // its score stage with that stage's units stored or not, delivered or not.
      const runs = await openHome(dir).runs.listRuns();
      expect(runs, label).toHaveLength(1);
      const target = runs[0]!;
      expect(target.status, label).toBe('running');
      const resumed = await redriveRun(target.runId, { home: dir, pipelines }, { resume: true });
      if (resumed.code !== 0) {
        failures.push(`${label}: redrive exit ${resumed.code}: ${resumed.err.join(' | ')}`);
        continue;
      }
      const summary = resumed.json();
      expect(summary.runId, label).toBe(target.runId);
      expect(summary.status, label).toBe('succeeded');
      expect(summary.counts, label).toEqual(reference.counts);
      expect(summary.stages, label).toEqual(reference.stages);
      const home = openHome(dir);
      const rows = await readTable(home.store, 'runs', 'credit-risk', '');
      expect(
        rows.map((r) => r.run_id),
        label,
      ).toEqual([target.runId]);
      const scores = await readTable(home.store, 'scores', 'credit-risk', summary.runId);
      expect(scores.length, label).toBe(reference.counts.scored);
      await rm(dir, { recursive: true, force: true });
    }
    expect(failures).toEqual([]);
  }, 300_000);
});
