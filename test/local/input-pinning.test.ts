import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { startLocalRuntime } from '../../cli/local-run.ts';
import { main } from '../../cli/main.ts';
import { resolveInputs, stageInputs } from '../../cli/stage-inputs.ts';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parseEmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ObjectChanged, ObjectRangeError } from '../../shared/errors/errors.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { drain } from '../support/streams.ts';

const KEY = 'incoming/docs/a.jsonl';

/** JSONL of `count` records whose text says which file (`tag`) they came from. */
function records(count: number, tag: string): string {
  return Array.from(
    { length: count },
    (_, i) => `{"id":"d${i}","text":"${tag} record ${i} of the file"}\n`,
  ).join('');
}

describe('ObjectStore input pinning', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-pin-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const stores: [string, () => ObjectStore][] = [
    ['FsObjectStore', () => new FsObjectStore(dir)],
    ['MemoryObjectStore', () => new MemoryObjectStore(7)],
  ];

  for (const [name, make] of stores) {
    describe(name, () => {
      it('reads a pinned version while the object is unchanged', async () => {
        const store = make();
        await store.put(KEY, 'hello world\n');
        const head = await store.head(KEY, { version: true });
        expect(head?.version).toEqual(expect.any(String));

        const read = await drain(store.readRange(KEY, 6, 12, { version: head!.version! }));
        expect(read.text).toBe('world\n');
      });

      it('fails a pinned read once the object is overwritten with other bytes of the same size', async () => {
        const store = make();
        await store.put(KEY, 'hello world\n');
        const { version } = (await store.head(KEY, { version: true }))!;
        await store.put(KEY, 'HELLO WORLD\n');

        await expect(drain(store.readRange(KEY, 0, 5, { version: version! }))).rejects.toBeInstanceOf(
          ObjectChanged,
        );
        await expect(drain(store.readRange(KEY, 0, 5, { version: version! }))).rejects.toThrow(
          `${KEY} changed since the run was planned`,
        );
      });

      it('fails a pinned read of an object deleted since', async () => {
        const store = make();
        await store.put(KEY, 'hello\n');
        const { version } = (await store.head(KEY, { version: true }))!;
        if (store instanceof MemoryObjectStore) store.objects.delete(KEY);
        else await rm(path.join(dir, KEY));

        await expect(drain(store.readRange(KEY, 0, undefined, { version: version! }))).rejects.toThrow(
          `${KEY} was deleted since the run was planned`,
        );
      });

      it('refuses a range past the end instead of reading it short or empty', async () => {
        const store = make();
        await store.put(KEY, '0123456789');
        await store.put('incoming/docs/empty.jsonl', '');

        await expect(drain(store.readRange(KEY, 5, 11))).rejects.toBeInstanceOf(ObjectRangeError);
        await expect(drain(store.readRange(KEY, 10))).rejects.toBeInstanceOf(ObjectRangeError);
        await expect(drain(store.readRange(KEY, 12, 20))).rejects.toThrow('reach past the end of the object');
        expect((await drain(store.readRange(KEY, 5, 10))).text).toBe('56789');
        expect((await drain(store.readRange('incoming/docs/empty.jsonl', 0))).chunks).toEqual([]);
      });
    });
  }

  describe('FsObjectStore', () => {
    it('detects a same-size overwrite in place within the same clock tick as the plan', async () => {
      const store = new FsObjectStore(dir);
      await store.put(KEY, 'aaaa\n');
      const { version } = (await store.head(KEY, { version: true }))!;
      // Written in place (same inode), at once, as `cp` over the file would.
      const handle = await open(path.join(dir, KEY), 'r+');
      await handle.write('bbbb\n', 0);
      await handle.close();

      await expect(drain(store.readRange(KEY, 0, undefined, { version: version! }))).rejects.toBeInstanceOf(
        ObjectChanged,
      );
    });

    it('reads a file rewritten with the same bytes (a re-staged identical input keeps its version)', async () => {
      const store = new FsObjectStore(dir);
      await store.put(KEY, 'same\n');
      const { version } = (await store.head(KEY, { version: true }))!;
      await writeFile(path.join(dir, KEY), 'same\n');

      expect((await drain(store.readRange(KEY, 0, undefined, { version: version! }))).text).toBe('same\n');
    });
  });
});

/**
 * The reproduction of issue 13: a file planned into units, then overwritten under the same
 * name by a second `sluice run` (shorter, as in the report, or the same size) before the
 * units are worked. Before units pinned their input the run succeeded with the later units
 * reading the new bytes, or nothing.
 */
describe('sluice run of an input overwritten between plan and work', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-pin-run-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const PIPELINE = {
    name: 'docs',
    kind: 'embed',
    endpoint: { name: 'docs-embed', dimension: 16, maxRetries: 0 },
    chunking: { maxTokens: 32, overlapTokens: 4 },
    planning: { targetUnitTokens: 2_000 },
    workers: { maxConcurrency: 4, maxReceiveCount: 3 },
    incremental: { enabled: false },
  };
  const config = parseEmbedPipelineConfig(PIPELINE);

  /** The CLI in-process, its output captured. */
  async function sluice(...argv: string[]) {
    const out: string[] = [];
    const code = await main(argv, { out: (l) => out.push(l), err: () => {} });
    return { code, json: () => JSON.parse(out.at(-1)!) };
  }

  async function overwrittenRun(first: string, second: string) {
    const home = openHome(path.join(dir, 'home'));
    const file = path.join(dir, 'a.jsonl');
    await writeFile(file, first);
    const runtime = await startLocalRuntime({ home, config, log: () => {}, threads: 0 });
    try {
      const inputs = await resolveInputs([file], config.name);
      await stageInputs(home.store, inputs);
      const plan = await planRun({ store: home.store, runs: home.runs, queue: runtime.queue }, config, {
        runId: 'r-20260101T000000Z-0000aa',
        trigger: 'local',
        keys: inputs.map((i) => i.key),
        now: new Date(),
      });
      // The second `sluice run` of a file with the same name stages it over the first.
      await writeFile(file, second);
      await stageInputs(home.store, inputs);
      await runtime.queue.drain();
      const units = await home.runs.listUnits(plan.run.runId);
      return { plan, units, summary: runtime.summaries.get(plan.run.runId)! };
    } finally {
      await runtime.close();
    }
  }

  it('fails every unit of a shortened input with the reason, never succeeding with fewer records', async () => {
    const { plan, units, summary } = await overwrittenRun(records(500, 'first'), records(300, 'second'));

    expect(plan.units.length).toBeGreaterThan(2);
    expect(plan.units.every((u) => u.sourceVersion !== undefined)).toBe(true);
    expect(summary.status).toBe('failed');
    expect(summary.counts.records).toBe(0);
    expect(units.map((u) => u.status)).toEqual(plan.units.map(() => 'failed'));
    for (const unit of units) {
      expect(unit.lastError).toContain('incoming/docs/a.jsonl changed since the run was planned');
      expect(unit.sourceVersion).toBe(plan.units[0]!.sourceVersion);
      // Failed at its first delivery (the next one only acknowledges it): retrying cannot bring the planned bytes back.
      expect(unit.attempts).toBeLessThan(config.workers.maxReceiveCount);
    }
    expect(summary.failedUnits[0]?.lastError).toContain('changed since the run was planned');

    // `sluice status` shows what each unit pinned.
    const home = path.join(dir, 'home');
    const status = await sluice('status', plan.run.runId, '--home', home, '--json');
    expect(status.json().units[0]).toMatchObject({
      sourceVersion: plan.units[0]!.sourceVersion,
      status: 'failed',
    });

    // A redrive cannot bring the planned bytes back: it fails the same way, at once.
    const pipelines = path.join(dir, 'pipelines');
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, 'docs.json'), JSON.stringify(PIPELINE));
    const redriven = await sluice(
      'redrive',
      plan.run.runId,
      '--home',
      home,
      '--pipelines',
      pipelines,
      '--json',
    );
    expect(redriven.code).toBe(1);
    expect(redriven.json()).toMatchObject({ status: 'failed', counts: { records: 0 } });
    for (const unit of await openHome(home).runs.listUnits(plan.run.runId))
      expect(unit.lastError).toContain('changed since the run was planned');

    // Dropping the file again runs its new content, exact.
    const rerun = await sluice(
      'run',
      path.join(dir, 'a.jsonl'),
      '--pipeline',
      'docs',
      '--home',
      home,
      '--pipelines',
      pipelines,
      '--json',
    );
    expect(rerun.code).toBe(0);
    expect(rerun.json()).toMatchObject({ status: 'succeeded', counts: { records: 300, rejected: 0 } });
  });

  it('fails the units of an input overwritten with other bytes of the same size', async () => {
    const { summary } = await overwrittenRun(records(400, 'first'), records(400, 'other'));

    expect(summary.status).toBe('failed');
    expect(summary.counts.records).toBe(0);
    expect(summary.counts.failedUnits).toBe(summary.counts.units);
  });

  it('finishes exact when the file is re-staged with the same content', async () => {
    const { summary } = await overwrittenRun(records(400, 'same'), records(400, 'same'));

    expect(summary.status).toBe('succeeded');
    expect(summary.counts.records).toBe(400);
  });
});
