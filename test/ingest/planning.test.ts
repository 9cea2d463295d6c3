import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import { classifySource, planUnits, unitCostTarget } from '../../shared/plan/plan-units.ts';
import { MAX_LISTED_INPUT_BYTES } from '../../shared/plan/run-manifest.ts';
import { documentCost, estimateCosts } from '../../shared/plan/sample-cost.ts';
import {
  descriptorBytes,
  MAX_PACKED_FILES,
  MAX_UNIT_DESCRIPTOR_BYTES,
  SQS_MESSAGE_LIMIT_BYTES,
} from '../../shared/plan/unit-limits.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { slicesOf } from '../../shared/work/unit-records.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { parquetFile, readSlices, wholeSlice, words } from './factories.ts';

const RUN_ID = 'r-20260301T100000Z-abcdef';
const counter = new EstimatingTokenCounter();

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

const stateDirs: string[] = [];
afterAll(() => Promise.all(stateDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function plan(store: MemoryObjectStore, config: ReturnType<typeof pipelineConfig>, keys: string[]) {
  const queue = new RecordingQueue();
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-plan-'));
  stateDirs.push(dir);
  const runs = new LocalRunStore(dir);
  return {
    queue,
    result: await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys,
      now: new Date(),
    }),
  };
}

/** Tokens the worker will count for the records of a unit (what `actualCost` measures). */
async function actualCost(
  store: MemoryObjectStore,
  unit: WorkUnit,
  config: ReturnType<typeof pipelineConfig>,
) {
  let tokens = 0;
  for (const record of await readSlices(store, slicesOf(unit), config.input))
    if (record.kind === 'doc') tokens += documentCost(record.text, counter, config);
  return tokens;
}

/** Documents of very different lengths, so that cost is not a count of records. */
function skewedDocs(prefix: string, count: number, seed: number): string {
  return jsonl(
    Array.from({ length: count }, (_, i) => ({
      id: `${prefix}${i}`,
      text: words(seed + i, 5 + ((i * 37) % 200)),
    })),
  );
}

describe('estimateCosts', () => {
  it('prices a big file from a few windows within 10% of the tokens the worker will count', async () => {
    const config = pipelineConfig();
    const store = new MemoryObjectStore();
    const body = skewedDocs('d', 6000, 1);
    await store.put('big.jsonl', body);
    const [estimate] = await estimateCosts(
      store,
      [{ key: 'big.jsonl', size: Buffer.byteLength(body), format: 'jsonl', compression: 'none' }],
      config,
      { counter },
    );
    const actual = body
      .trim()
      .split('\n')
      .reduce(
        (sum, line) => sum + documentCost((JSON.parse(line) as { text: string }).text, counter, config),
        0,
      );
    expect(estimate!.method).toBe('sampled');
    expect(estimate!.sampledBytes).toBe(4 * 64 * 1024);
    expect(Math.abs(estimate!.estCost - actual) / actual).toBeLessThan(0.1);
  });

  it('prices many small files by the tokens per byte of a sample of them, reading only that sample', async () => {
    const config = pipelineConfig();
    const store = new MemoryObjectStore();
    const reads: string[] = [];
    const readRange = store.readRange.bind(store);
    store.readRange = (key, start, end) => {
      reads.push(key);
      return readRange(key, start, end);
    };
    const files = [];
    for (let i = 0; i < 500; i += 1) {
      const body = jsonl([{ id: `s${i}`, text: words(i, 20 + (i % 30)) }]);
      await store.put(`small/${String(i).padStart(4, '0')}.jsonl`, body);
      files.push({
        key: `small/${String(i).padStart(4, '0')}.jsonl`,
        size: Buffer.byteLength(body),
        format: 'jsonl' as const,
        compression: 'none' as const,
      });
    }
    const estimates = await estimateCosts(store, files, config, { counter, smallFilesSampled: 50 });
    expect(new Set(reads).size).toBe(50);
    expect(estimates.filter((e) => e.method === 'group-ratio')).toHaveLength(450);
    const total = estimates.reduce((sum, e) => sum + e.estCost, 0);
    let actual = 0;
    for (const file of files)
      actual += (await readSlices(store, [await wholeSlice(store, file.key, 'jsonl')], config.input)).reduce(
        (s, r) => s + (r.kind === 'doc' ? documentCost(r.text, counter, config) : 0),
        0,
      );
    expect(Math.abs(total - actual) / actual).toBeLessThan(0.1);
  });

  it('prices gzip from its first window, Parquet per row group, and notes quotes in a CSV sample', async () => {
    const config = pipelineConfig();
    const store = new MemoryObjectStore();
    const docs = skewedDocs('g', 4000, 2);
    await store.put('a.jsonl.gz', gzipSync(docs));
    const texts = Array.from({ length: 40 }, (_, i) => words(i, 10 + i * 5));
    await store.put('b.parquet', parquetFile({ id: texts.map((_, i) => `p${i}`), text: texts }, 10));
    await store.put('c.csv', 'id,text\n1,"a, quoted\nfield"\n');
    const files = await Promise.all(
      ['a.jsonl.gz', 'b.parquet', 'c.csv'].map(async (key) => ({
        key,
        size: (await store.head(key))!.size,
        ...classifySource(key, 'auto'),
      })),
    );
    const [gz, parquet, csv] = await estimateCosts(store, files, config, { counter });
    const docsCost = docs
      .trim()
      .split('\n')
      .reduce(
        (sum, line) => sum + documentCost((JSON.parse(line) as { text: string }).text, counter, config),
        0,
      );
    expect(gz!.method).toBe('gzip-prefix');
    expect(Math.abs(gz!.estCost - docsCost) / docsCost).toBeLessThan(0.2);
    expect(parquet!.method).toBe('parquet-sample');
    expect(parquet!.parquet!.costs).toHaveLength(4);
    // Later row groups hold longer documents: their estimates grow with their text bytes.
    expect(parquet!.parquet!.costs[3]!).toBeGreaterThan(parquet!.parquet!.costs[0]!);
    expect(csv).toMatchObject({ method: 'whole', maybeQuoted: true });
  });
});

describe('estimateCosts (CSV)', () => {
  it('reads the header of a CRLF file as the reader does, so its text column is priced', async () => {
    const config = pipelineConfig();
    const store = new MemoryObjectStore();
    const texts = Array.from({ length: 50 }, (_, i) => words(i, 20));
    await store.put('d.csv', `id,text\r\n${texts.map((t, i) => `${i},"${t}"`).join('\r\n')}\r\n`);
    const [estimate] = await estimateCosts(
      store,
      [{ key: 'd.csv', size: (await store.head('d.csv'))!.size, format: 'csv', compression: 'none' }],
      config,
      { counter },
    );
    expect(estimate!.estCost).toBe(texts.reduce((sum, t) => sum + documentCost(t, counter, config), 0));
  });
});

describe('planning by cost', () => {
  it('balances a skewed drop: every unit within 25% of the mean, a whole number of worker waves', async () => {
    const config = pipelineConfig({
      planning: { targetUnitTokens: 20_000, charsPerToken: 4 },
      workers: { maxConcurrency: 4 },
    });
    const store = new MemoryObjectStore();
    const keys: string[] = [];
    const sizes = [3000, 800, 400, 200, 100, 60, 40, 30, 20, 10];
    for (const [i, count] of sizes.entries()) {
      await store.put(`incoming/docs/f${i}.jsonl`, skewedDocs(`f${i}-`, count, i * 1000));
      keys.push(`incoming/docs/f${i}.jsonl`);
    }
    for (let i = 0; i < 300; i += 1) {
      await store.put(`incoming/docs/tiny/${i}.jsonl`, jsonl([{ id: `t${i}`, text: words(i, 8) }]));
      keys.push(`incoming/docs/tiny/${i}.jsonl`);
    }
    const { result } = await plan(store, config, keys);
    const costs = await Promise.all(result.units.map((unit) => actualCost(store, unit, config)));
    const mean = costs.reduce((a, b) => a + b, 0) / costs.length;
    expect(Math.max(...costs) / mean).toBeLessThan(1.25);
    expect(result.units.length % config.workers.maxConcurrency).toBe(0);
    // Every record of every file exactly once.
    const ids = (
      await Promise.all(result.units.map(async (u) => readSlices(store, slicesOf(u), config.input)))
    )
      .flat()
      .map((r) => (r.kind === 'reject' ? r.reason : r.id));
    expect(ids.length).toBe(new Set(ids).size);
    expect(ids.length).toBe(sizes.reduce((a, b) => a + b, 0) + 300);
  });

  it('splits a big Parquet file into runs of row groups, each row read once', async () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 2000, charsPerToken: 4 } });
    const store = new MemoryObjectStore();
    const texts = Array.from({ length: 300 }, (_, i) => words(i, 20 + (i % 40)));
    await store.put(
      'incoming/docs/t.parquet',
      parquetFile({ id: texts.map((_, i) => `p${i}`), text: texts }, 25),
    );
    const { result } = await plan(store, config, ['incoming/docs/t.parquet']);
    expect(result.units.length).toBeGreaterThan(2);
    const ids = (await Promise.all(result.units.map((u) => readSlices(store, slicesOf(u), config.input))))
      .flat()
      .map((r) => (r.kind === 'reject' ? r.reason : r.id));
    expect(ids).toEqual(texts.map((_, i) => `p${i}`));
  });

  it('re-stages a big gzip into parts under staging/<runId>/ whose records keep the original key and lines', async () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 5000, charsPerToken: 4 } });
    const store = new MemoryObjectStore();
    const lines = Array.from({ length: 2000 }, (_, i) =>
      i % 3 === 0 ? { text: words(i, 30) } : { id: `z${i}`, text: words(i, 12) },
    );
    await store.put('incoming/docs/big.jsonl.gz', gzipSync(jsonl(lines)));
    const { result } = await plan(store, config, ['incoming/docs/big.jsonl.gz']);
    expect(result.units.length).toBeGreaterThan(3);
    for (const unit of result.units) {
      expect(unit.sourceKey).toBe('incoming/docs/big.jsonl.gz');
      expect(unit.staged!.key.startsWith(`staging/${RUN_ID}/`)).toBe(true);
    }
    const direct = await readSlices(
      store,
      [await wholeSlice(store, 'incoming/docs/big.jsonl.gz', 'jsonl', 'gzip')],
      config.input,
    );
    const staged = (
      await Promise.all(result.units.map((u) => readSlices(store, slicesOf(u), config.input)))
    ).flat();
    expect(staged).toEqual(direct);
    expect(staged[0]).toMatchObject({ id: 'incoming/docs/big.jsonl.gz:1', line: 1 });
    const costs = await Promise.all(result.units.map((unit) => actualCost(store, unit, config)));
    const mean = costs.reduce((a, b) => a + b, 0) / costs.length;
    expect(Math.max(...costs) / mean).toBeLessThan(1.25);
    expect(result.stats.restagedBytesOut).toBe(Buffer.byteLength(jsonl(lines)));
  });

  it('aims units at the configured target, rounded to whole waves of workers', () => {
    const config = pipelineConfig({
      planning: { targetUnitTokens: 1000, charsPerToken: 4 },
      workers: { maxConcurrency: 8 },
    });
    expect(unitCostTarget(10_000, config)).toBe(10_000 / 16);
    expect(unitCostTarget(500, config)).toBe(500); // too small for a wave: one unit
    expect(unitCostTarget(0, config)).toBe(1000);
  });

  it('does not split a CSV whose header is too long to copy into every unit', async () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 200, charsPerToken: 4 } });
    const store = new MemoryObjectStore();
    const header = `id,text,${Array.from({ length: 3000 }, (_, i) => `column_${i}`).join(',')}`;
    const blanks = ','.repeat(3000);
    const rows = Array.from({ length: 200 }, (_, i) => `${i},${words(i, 10)}${blanks}`);
    await store.put('wide.csv', `${header}\n${rows.join('\n')}\n`);
    const size = (await store.head('wide.csv'))!.size;
    const units = await planUnits(store, config, RUN_ID, [
      { key: 'wide.csv', size, format: 'csv', compression: 'none', estCost: 5000 },
    ]);
    expect(units).toHaveLength(1);
    expect(units[0]).toMatchObject({ byteStart: 0, byteEnd: size });
  });
});

describe('many files, one run', () => {
  it('plans 10,000 small files as one run of packed units whose descriptors stay small messages', async () => {
    const config = pipelineConfig();
    const store = new MemoryObjectStore();
    const keys: string[] = [];
    for (let i = 0; i < 10_000; i += 1) {
      const key = `incoming/docs/drop-2026-03-01/customer-notes/${String(i).padStart(5, '0')}.jsonl`;
      await store.put(key, jsonl([{ id: `n${i}`, text: `note ${i}: ${words(i, 12)}` }]));
      keys.push(key);
    }
    const { result, queue } = await plan(store, config, keys);
    expect(queue.units).toHaveLength(result.units.length);
    expect(result.inputCount).toBe(10_000);
    const read = result.units.flatMap((u) => [u.sourceKey, ...u.packed.map((p) => p.key)]).sort();
    expect(read).toEqual(keys);
    for (const unit of result.units) {
      expect(descriptorBytes(unit)).toBeLessThanOrEqual(MAX_UNIT_DESCRIPTOR_BYTES);
      expect(descriptorBytes(unit)).toBeLessThan(SQS_MESSAGE_LIMIT_BYTES);
      expect(unit.packed.length + 1).toBeLessThanOrEqual(MAX_PACKED_FILES);
    }
    // The run item stays bounded; the manifest lists every input.
    expect(Buffer.byteLength(JSON.stringify(result.run.inputs))).toBeLessThanOrEqual(MAX_LISTED_INPUT_BYTES);
    const manifest = new TextDecoder().decode(await store.get(result.manifestKey));
    expect(manifest.trim().split('\n')).toHaveLength(10_000);
    expect(JSON.parse(manifest.split('\n')[0]!)).toMatchObject({
      key: keys[0],
      format: 'jsonl',
      compression: 'none',
    });
  });
});
