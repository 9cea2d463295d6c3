/**
 * The local chunk index at 1M and 5M entries: writes in `record()` batches, random point
 * hits and misses, disk size and peak RSS, each size in its own child process.
 *
 * `npm run bench -- chunk-index` measures the current `LocalChunkIndex` (LevelDB). The
 * hand-made LSM it replaced was measured beside it in the same run, from its source at
 * commit 0d7fd72 (`CHUNK_INDEX_BENCH_OLD=<path to its local-chunk-index.ts>`); without
 * that variable the old figures are carried over from the previous results file, labelled
 * with when and where they were measured.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChunkIndex, IndexedChunk } from '../shared/ports/chunk-index.ts';

const here = fileURLToPath(import.meta.url);
const repoRoot = path.dirname(path.dirname(here));
const resultsFile = path.join(repoRoot, 'bench', 'results', 'chunk-index.json');
const PIPELINE = 'docs';
const WRITE_BATCH = 10_000;
const LOOKUPS = 2048;
const LOOKUP_SLICE = 100;
const ROUNDS = 5;
/** Floats per vector: 4 by default; `CHUNK_INDEX_BENCH_DIMENSIONS=384` writes the memory bench's vectors. */
const DIMENSIONS = Number(process.env.CHUNK_INDEX_BENCH_DIMENSIONS ?? 4);

interface CaseResult {
  readonly entries: number;
  /** Writing every entry, in `record()` calls of 10,000 chunks. */
  readonly writeSeconds: number;
  readonly writeBatchMs: { readonly p50: number; readonly max: number };
  /** A 10,000-chunk `record()` of new entries into the full index (median of 5). */
  readonly batchIntoFullMs: number;
  /** Bytes under the index folder after the writes (and, for LevelDB, a close). */
  readonly diskMiB: number;
  /** A fresh instance's first lookup (load, or LevelDB open). */
  readonly openMs: number;
  /** 2,048 random lookups in slices of 100, median of 5 rounds. */
  readonly hitsMs: number;
  readonly missesMs: number;
  readonly rssAfterLookupsMiB: number;
  readonly peakRssMiB: number;
}

interface ChunkIndexBenchResult {
  name: 'chunk-index';
  workload: string;
  rerun: string;
  levelDb: CaseResult[];
  handMadeLsm: { measured: string; cases: CaseResult[] };
}

const chunkOf = (i: number, runId: string): IndexedChunk => ({
  chunkId: `doc${i}#0`,
  textSha256: (i * 2654435761).toString(16).padStart(64, '0'),
  embedding: Float32Array.from({ length: DIMENSIONS }, (_, d) => (i % 997) / 997 + d),
  runId,
});

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    total += entry.isDirectory() ? await diskBytes(file) : (await stat(file)).size;
  }
  return total;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

type Make = (dir: string) => ChunkIndex & { close?(): Promise<void> };

async function measureCase(make: Make, entries: number, dir: string): Promise<CaseResult> {
  const index = make(dir);
  const batchMs: number[] = [];
  const started = performance.now();
  for (let at = 0; at < entries; at += WRITE_BATCH) {
    const chunks = Array.from({ length: Math.min(WRITE_BATCH, entries - at) }, (_, j) =>
      chunkOf(at + j, 'r-20261128T000000Z-000001'),
    );
    const t = performance.now();
    await index.record(PIPELINE, chunks, []);
    batchMs.push(performance.now() - t);
  }
  const writeSeconds = (performance.now() - started) / 1000;
  const intoFull: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const chunks = Array.from({ length: WRITE_BATCH }, (_, j) =>
      chunkOf(entries + round * WRITE_BATCH + j, 'r-20261129T000000Z-000002'),
    );
    const t = performance.now();
    await index.record(PIPELINE, chunks, []);
    intoFull.push(performance.now() - t);
  }
  await index.close?.();
  const diskMiB = mib(await diskBytes(dir));

  const fresh = make(dir);
  const t = performance.now();
  await fresh.lookupChunks(PIPELINE, ['doc0#0']);
  const openMs = performance.now() - t;
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const lookUp = async (ids: string[], hit: boolean): Promise<number> => {
    const slices = Array.from({ length: Math.ceil(ids.length / LOOKUP_SLICE) }, (_, i) =>
      ids.slice(i * LOOKUP_SLICE, (i + 1) * LOOKUP_SLICE),
    );
    const expected = hit ? slices.reduce((sum, slice) => sum + new Set(slice).size, 0) : 0;
    const began = performance.now();
    let found = 0;
    for (const slice of slices) found += (await fresh.lookupChunks(PIPELINE, slice)).size;
    const ms = performance.now() - began;
    if (found !== expected) throw new Error(`chunk-index bench: found ${found} of ${expected}`);
    return ms;
  };
  const hits: number[] = [];
  const misses: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    hits.push(
      await lookUp(
        Array.from({ length: LOOKUPS }, () => `doc${Math.floor(random() * entries)}#0`),
        true,
      ),
    );
    misses.push(
      await lookUp(
        Array.from({ length: LOOKUPS }, () => `doc${Math.floor(random() * entries)}#1`),
        false,
      ),
    );
  }
  const rssAfterLookupsMiB = mib(process.memoryUsage().rss);
  await fresh.close?.();
  return {
    entries,
    writeSeconds: Math.round(writeSeconds * 10) / 10,
    writeBatchMs: { p50: Math.round(median(batchMs)), max: Math.round(Math.max(...batchMs)) },
    batchIntoFullMs: Math.round(median(intoFull)),
    diskMiB,
    openMs: Math.round(openMs * 10) / 10,
    hitsMs: Math.round(median(hits) * 10) / 10,
    missesMs: Math.round(median(misses) * 10) / 10,
    rssAfterLookupsMiB,
    peakRssMiB: mib(process.resourceUsage().maxRSS * 1024),
  };
}

/** Runs one case in a child process, so its RSS is its own. */
function runChild(module: string, entries: number): Promise<CaseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', here, 'child', module, String(entries)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`chunk-index bench child (${module}, ${entries}) exited ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!) as CaseResult);
    });
  });
}

function numbersFromEnv(name: string, fallback: number[]): number[] {
  const value = process.env[name];
  return value ? value.split(',').map(Number) : fallback;
}

export async function runChunkIndexBench(
  sizes: readonly number[] = numbersFromEnv('CHUNK_INDEX_BENCH_ENTRIES', [1_000_000, 5_000_000]),
): Promise<ChunkIndexBenchResult> {
  const current = path.join(repoRoot, 'shared', 'adapters', 'local', 'local-chunk-index.ts');
  const oldModule = process.env.CHUNK_INDEX_BENCH_OLD;
  const levelDb: CaseResult[] = [];
  const old: CaseResult[] = [];
  for (const entries of sizes) {
    levelDb.push(await runChild(current, entries));
    if (oldModule) old.push(await runChild(path.resolve(oldModule), entries));
  }
  let handMadeLsm: ChunkIndexBenchResult['handMadeLsm'];
  if (oldModule)
    handMadeLsm = {
      measured: `in this run, beside LevelDB, from ${oldModule} (the source at commit 0d7fd72, before it was deleted)`,
      cases: old,
    };
  else {
    const previous = existsSync(resultsFile)
      ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Partial<ChunkIndexBenchResult> & {
          measuredAt?: string;
        })
      : undefined;
    const carried = previous?.handMadeLsm;
    handMadeLsm = carried
      ? {
          measured: carried.measured.startsWith('carried over')
            ? carried.measured
            : `carried over from the run of ${previous?.measuredAt ?? 'unknown date'} (${carried.measured}); not remeasured`,
          cases: carried.cases,
        }
      : { measured: 'not measured (no previous results)', cases: [] };
  }
  return {
    name: 'chunk-index',
    workload: `one pipeline, ${DIMENSIONS}-float vectors, 64-hex fingerprints, chunk ids doc<i>#0 written in record() calls of ${WRITE_BATCH.toLocaleString('en')}; then ${ROUNDS} more record() calls of new chunks into the full index; a fresh instance answers ${LOOKUPS} random hits and ${LOOKUPS} misses (doc<i>#1) in slices of ${LOOKUP_SLICE}, median of ${ROUNDS} rounds; each size in its own process (peak RSS includes generating the entries)`,
    rerun: `CHUNK_INDEX_BENCH_ENTRIES=${sizes.join(',')} npm run bench -- chunk-index`,
    levelDb,
    handMadeLsm,
  };
}

if (
  process.argv[1] &&
  pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url &&
  process.argv[2] === 'child'
) {
  const [, , , module, entries] = process.argv;
  const { LocalChunkIndex } = (await import(pathToFileURL(module!).href)) as {
    LocalChunkIndex: new (dir: string) => ChunkIndex & { close?(): Promise<void> };
  };
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-chunk-index-bench-'));
  try {
    const result = await measureCase((d) => new LocalChunkIndex(d), Number(entries), dir);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
