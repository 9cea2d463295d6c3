/**
 * The local chunk index at 1M and 5M documents: writes in `record()` batches, random point
 * hits and misses, disk size (and per 1,000 documents) and peak RSS, each size in its own
 * child process.
 *
 * `npm run bench -- chunk-index` measures the current `LocalChunkIndex` (LevelDB, one entry
 * per document with its chunks' 16-byte fingerprints and where their vectors are). The
 * figures of the index before that (one entry per chunk with its vector, and the hand-made
 * LSM before LevelDB) are carried over from the first results file of the per-document
 * index under `before`, labelled with when they were measured; they are not remeasured.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ChunkIndex, INDEX_FINGERPRINT_BYTES, type IndexedDoc } from '../shared/ports/chunk-index.ts';

const here = fileURLToPath(import.meta.url);
const repoRoot = path.dirname(path.dirname(here));
const resultsFile = path.join(repoRoot, 'bench', 'results', 'chunk-index.json');
const PIPELINE = 'docs';
const WRITE_BATCH = 10_000;
const LOOKUPS = 2048;
const LOOKUP_SLICE = 100;
const ROUNDS = 5;
/** Chunks per document: 4 by default (a 1,000-token document at 256-token chunks). */
const CHUNKS_PER_DOC = Number(process.env.CHUNK_INDEX_BENCH_CHUNKS ?? 4);

interface CaseResult {
  /** Documents in the index (each with {@link CHUNKS_PER_DOC} chunks' fingerprints). */
  readonly docs: number;
  /** Writing every document, in `record()` calls of 10,000. */
  readonly writeSeconds: number;
  readonly writeBatchMs: { readonly p50: number; readonly max: number };
  /** A 10,000-document `record()` of new entries into the full index (median of 5). */
  readonly batchIntoFullMs: number;
  /** Bytes under the index folder after the writes and a close. */
  readonly diskMiB: number;
  readonly diskKiBPer1000Docs: number;
  /** A fresh instance's first lookup (LevelDB open). */
  readonly openMs: number;
  /** 2,048 random lookups in slices of 100, median of 5 rounds. */
  readonly hitsMs: number;
  readonly missesMs: number;
  readonly rssAfterLookupsMiB: number;
  readonly peakRssMiB: number;
}

/** The figures of the index before it kept one entry per document, as the results file had them. */
interface Before {
  readonly measured: string;
  readonly workload?: string;
  readonly levelDb?: unknown[];
  readonly handMadeLsm?: unknown;
}

interface ChunkIndexBenchResult {
  name: 'chunk-index';
  workload: string;
  rerun: string;
  levelDb: CaseResult[];
  before: Before;
}

/** Document `i`: its chunks' fingerprints (sha256 bytes, so Snappy does not shrink them) and place. */
function docOf(i: number, runId: string): IndexedDoc {
  const fingerprints = new Uint8Array(CHUNKS_PER_DOC * INDEX_FINGERPRINT_BYTES);
  for (let n = 0; n < CHUNKS_PER_DOC; n += 1)
    fingerprints.set(
      createHash('sha256').update(`doc${i}#${n}`).digest().subarray(0, INDEX_FINGERPRINT_BYTES),
      n * INDEX_FINGERPRINT_BYTES,
    );
  return {
    docId: `doc${i}`,
    chunkCount: CHUNKS_PER_DOC,
    sourceKey: `incoming/docs/part-${String(Math.floor(i / 50_000)).padStart(5, '0')}.jsonl`,
    chunks: {
      fingerprints,
      at: {
        runId,
        unitId: `u-${String(Math.floor(i / 2048)).padStart(5, '0')}`,
        firstRow: (i % 2048) * CHUNKS_PER_DOC,
      },
    },
  };
}

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

async function measureCase(make: Make, docs: number, dir: string): Promise<CaseResult> {
  const index = make(dir);
  const batchMs: number[] = [];
  const started = performance.now();
  for (let at = 0; at < docs; at += WRITE_BATCH) {
    const batch = Array.from({ length: Math.min(WRITE_BATCH, docs - at) }, (_, j) =>
      docOf(at + j, 'r-20261128T000000Z-000001'),
    );
    const t = performance.now();
    await index.record(PIPELINE, batch);
    batchMs.push(performance.now() - t);
  }
  const writeSeconds = (performance.now() - started) / 1000;
  const intoFull: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const batch = Array.from({ length: WRITE_BATCH }, (_, j) =>
      docOf(docs + round * WRITE_BATCH + j, 'r-20261129T000000Z-000002'),
    );
    const t = performance.now();
    await index.record(PIPELINE, batch);
    intoFull.push(performance.now() - t);
  }
  await index.close?.();
  const bytes = await diskBytes(dir);

  const fresh = make(dir);
  const t = performance.now();
  await fresh.lookupDocs(PIPELINE, ['doc0']);
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
    for (const slice of slices) {
      const got = await fresh.lookupDocs(PIPELINE, slice);
      for (const doc of got.values())
        if (doc.chunks?.fingerprints.length !== CHUNKS_PER_DOC * INDEX_FINGERPRINT_BYTES)
          throw new Error(`chunk-index bench: ${doc.docId} came back without its fingerprints`);
      found += got.size;
    }
    const ms = performance.now() - began;
    if (found !== expected) throw new Error(`chunk-index bench: found ${found} of ${expected}`);
    return ms;
  };
  const hits: number[] = [];
  const misses: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    hits.push(
      await lookUp(
        Array.from({ length: LOOKUPS }, () => `doc${Math.floor(random() * docs)}`),
        true,
      ),
    );
    misses.push(
      await lookUp(
        Array.from({ length: LOOKUPS }, () => `doc${Math.floor(random() * docs)}x`),
        false,
      ),
    );
  }
  const rssAfterLookupsMiB = mib(process.memoryUsage().rss);
  await fresh.close?.();
  const written = docs + ROUNDS * WRITE_BATCH;
  return {
    docs,
    writeSeconds: Math.round(writeSeconds * 10) / 10,
    writeBatchMs: { p50: Math.round(median(batchMs)), max: Math.round(Math.max(...batchMs)) },
    batchIntoFullMs: Math.round(median(intoFull)),
    diskMiB: mib(bytes),
    diskKiBPer1000Docs: Math.round((bytes / 1024 / written) * 1000 * 10) / 10,
    openMs: Math.round(openMs * 10) / 10,
    hitsMs: Math.round(median(hits) * 10) / 10,
    missesMs: Math.round(median(misses) * 10) / 10,
    rssAfterLookupsMiB,
    peakRssMiB: mib(process.resourceUsage().maxRSS * 1024),
  };
}

/** Runs one case in a child process, so its RSS is its own. */
function runChild(module: string, docs: number): Promise<CaseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', here, 'child', module, String(docs)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`chunk-index bench child (${module}, ${docs}) exited ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!) as CaseResult);
    });
  });
}

function numbersFromEnv(name: string, fallback: number[]): number[] {
  const value = process.env[name];
  return value ? value.split(',').map(Number) : fallback;
}

/**
 * The figures before the per-document index: the previous results file's `before` once it
 * has one, else (the first run after the change) its whole per-chunk results.
 */
function carriedBefore(): Before {
  if (!existsSync(resultsFile)) return { measured: 'not measured (no previous results)' };
  const previous = JSON.parse(readFileSync(resultsFile, 'utf8')) as Partial<ChunkIndexBenchResult> & {
    measuredAt?: string;
    handMadeLsm?: unknown;
  };
  if (previous.before) return previous.before;
  return {
    measured: `carried over from the run of ${previous.measuredAt ?? 'unknown date'}, when the index kept one entry per chunk with its vector (levelDb: LevelDB then; handMadeLsm: the index before LevelDB); not remeasured`,
    ...(previous.workload === undefined ? {} : { workload: previous.workload }),
    ...(previous.levelDb === undefined ? {} : { levelDb: previous.levelDb }),
    ...(previous.handMadeLsm === undefined ? {} : { handMadeLsm: previous.handMadeLsm }),
  };
}

export async function runChunkIndexBench(
  sizes: readonly number[] = numbersFromEnv('CHUNK_INDEX_BENCH_DOCS', [1_000_000, 5_000_000]),
): Promise<ChunkIndexBenchResult> {
  const current = path.join(repoRoot, 'shared', 'adapters', 'local', 'local-chunk-index.ts');
  const before = carriedBefore();
  const levelDb: CaseResult[] = [];
  for (const docs of sizes) levelDb.push(await runChild(current, docs));
  return {
    name: 'chunk-index',
    workload: `one pipeline, documents doc<i> of ${CHUNKS_PER_DOC} chunks each (${CHUNKS_PER_DOC * INDEX_FINGERPRINT_BYTES} fingerprint bytes, a source key, run, unit and first row) written in record() calls of ${WRITE_BATCH.toLocaleString('en')}; then ${ROUNDS} more record() calls of new documents into the full index; a fresh instance answers ${LOOKUPS} random hits and ${LOOKUPS} misses in lookupDocs() slices of ${LOOKUP_SLICE}, median of ${ROUNDS} rounds; each size in its own process (peak RSS includes generating the entries); diskKiBPer1000Docs counts every document written`,
    rerun: `CHUNK_INDEX_BENCH_DOCS=${sizes.join(',')} CHUNK_INDEX_BENCH_CHUNKS=${CHUNKS_PER_DOC} npm run bench -- chunk-index`,
    levelDb,
    before,
  };
}

if (
  process.argv[1] &&
  pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url &&
  process.argv[2] === 'child'
) {
  const [, , , module, docs] = process.argv;
  const { LocalChunkIndex } = (await import(pathToFileURL(module!).href)) as {
    LocalChunkIndex: new (dir: string) => ChunkIndex & { close?(): Promise<void> };
  };
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-chunk-index-bench-'));
  try {
    const result = await measureCase((d) => new LocalChunkIndex(d), Number(docs), dir);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
