import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { ChunkIndexFileError, LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import type { RunState } from '../../shared/domain/types.ts';
import { localListsPrefix } from '../../shared/jobs/recommend/recommendation-lists.ts';
import { supersededAmong } from '../../shared/jobs/recommend/superseded-runs.ts';
import { runDateOf } from '../../shared/output/keys.ts';
import { STAGING_PREFIX } from '../../shared/plan/restage-gzip.ts';
import type { LocalHome } from '../home.ts';
import { UsageError } from '../usage.ts';
import { localRefreshedBy, runRef, runsTheCurrentStateReads } from './current-runs.ts';
import { embeddingsHold, retainRuns } from './run-retention.ts';

/**
 * Tables whose per-unit parts (`<runId>-<unitId>.parquet`) a superseded run gives up.
 * The others stay: `runs`, `sources` and `segment_stats` are one small part per run and
 * are the history (and `sources` rows are the verdicts the current views rank);
 * `recommendations` and `generations` have no current-state rule yet, so nothing tells
 * which of their runs is superseded.
 */
const REMOVABLE_TABLES = ['embeddings', 'scores', 'rejects'] as const;
/** Per-unit lists under `runs/<pipeline>/<runId>/` that only that run's finalize reads. */
const REMOVABLE_RUN_FOLDERS = ['docs', 'ids'] as const;
/** FsObjectStore's temporary files (`<key>.<pid>.<random>.tmp`), left when a writer died mid-write. */
const TEMP_FILE = /\.\d+\.[a-z0-9]+\.tmp$/;

export interface GcOptions {
  /** Runs kept whole per pipeline, newest first, whatever else holds. */
  readonly keepRuns: number;
  /** Report what would go, remove nothing and compact nothing. */
  readonly dryRun: boolean;
  /** What a run's age is measured against (its embeddings' hold, run-retention.ts). @default the clock */
  readonly now?: Date;
}

export interface RunDecision {
  readonly runId: string;
  readonly pipeline: string;
  readonly status: string;
  readonly startedAt: string;
  readonly remove: boolean;
  /** Why it is kept or removed, in words. */
  readonly reason: string;
  /** Paths (relative to the home) removed, or that would be. */
  readonly files: readonly string[];
  readonly bytes: number;
}

export interface GcReport {
  readonly home: string;
  readonly dryRun: boolean;
  readonly keepRuns: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly runs: readonly RunDecision[];
  /** Re-staged gzip parts of runs that will never read them again. */
  readonly staging: { readonly files: readonly string[]; readonly bytes: number };
  /** Temporary files of writers that died mid-write. */
  readonly leftovers: { readonly files: readonly string[]; readonly bytes: number };
  /**
   * Recommend pipelines' served lists (`runs/<pipeline>/<runId>/recommend/lists/`) of runs
   * no reader serves again: started before a succeeded run of their pipeline.
   */
  readonly recommendationLists: { readonly files: readonly string[]; readonly bytes: number };
  readonly chunkIndex: {
    readonly compacted: boolean;
    readonly bytesBefore: number;
    readonly bytesAfter: number;
  };
}

/**
 * Bounds a local home's storage (`sluice gc`): removes the per-unit result parts and
 * finalize lists of old runs the current state no longer reads, re-staged gzip parts no
 * run will read again, temporary files of dead writers and the served recommendation lists
 * of runs older than their pipeline's served one, then compacts the chunk index.
 *
 * What is never removed: the newest `keepRuns` runs of each pipeline; any run that is not
 * `succeeded` (a failed run is redriven from its parts and staging, a running one is in
 * use or waits for `redrive --resume`); any run the current-state views read
 * (current-runs.ts); a run with `embeddings` parts until EMBEDDINGS_HOLD_DAYS after it
 * started, which chunk index entries may still point at (run-retention.ts `embeddingsHold`); every run's `runs`, `sources` and `segment_stats` rows, summary and
 * input manifest; the recommendation lists of a pipeline's newest succeeded run (the ones
 * `sluice recommend` serves) and of every run newer than it, so a failed newest run leaves
 * the served lists in place; `incoming/` (the local mirror of the bucket's inputs: a source gone
 * from it is a deleted source to the next incremental run); run state under `state/`.
 * Refused while another sluice process holds a run lease in this home.
 */
export async function collectGarbage(home: LocalHome, options: GcOptions): Promise<GcReport> {
  await refuseWhileInUse(home.dir);
  const bytesBefore = await bytesUnder(home.dir);
  const runs = await home.runs.listRuns(Number.MAX_SAFE_INTEGER);
  const current = await runsTheCurrentStateReads(home.bucketDir);
  const refreshedBy = await localRefreshedBy(home.bucketDir);
  const hold = (run: RunState) =>
    embeddingsHold(run.runId, options.now ?? new Date(), refreshedBy.get(runRef(run.pipeline, run.runId)));
  const decisions = await decideRuns(home, runs, current, options.keepRuns, hold);
  const staging = await removableStaging(home, runs);
  const leftovers = await tempFilesUnder(home.bucketDir, home.dir);
  const recommendationLists = await supersededLists(home, runs);

  const chunkIndexDir = path.join(home.dir, 'state', 'chunk-index');
  const indexBefore = await bytesUnder(chunkIndexDir);
  let compacted = false;
  if (!options.dryRun) {
    for (const run of decisions) if (run.remove) await removeFiles(home.dir, run.files);
    await removeFiles(home.dir, staging.files);
    await removeFiles(home.dir, leftovers.files);
    await removeFiles(home.dir, recommendationLists.files);
    compacted = await compactChunkIndex(chunkIndexDir);
  }
  return {
    home: home.dir,
    dryRun: options.dryRun,
    keepRuns: options.keepRuns,
    bytesBefore,
    bytesAfter: options.dryRun ? bytesBefore : await bytesUnder(home.dir),
    runs: decisions,
    staging,
    leftovers,
    recommendationLists,
    chunkIndex: { compacted, bytesBefore: indexBefore, bytesAfter: await bytesUnder(chunkIndexDir) },
  };
}

/** Each run kept or removed, newest first per pipeline, with the files a removal takes. */
async function decideRuns(
  home: LocalHome,
  runs: readonly RunState[],
  current: ReadonlySet<string>,
  keepRuns: number,
  embeddingsHold: (run: RunState) => string | undefined,
): Promise<RunDecision[]> {
  const out: RunDecision[] = [];
  for (const retained of retainRuns(runs, current, keepRuns)) {
    const { run } = retained;
    let { remove, reason } = retained;
    let files = remove ? await runFiles(home, run) : [];
    const hold = files.some(isEmbeddingsPart) ? embeddingsHold(run) : undefined;
    if (hold !== undefined) {
      remove = false;
      reason = hold;
      files = [];
    }
    const { runId, pipeline, status, startedAt } = run;
    out.push({
      runId,
      pipeline,
      status,
      startedAt,
      remove,
      reason,
      files,
      bytes: await bytesOf(home.dir, files),
    });
  }
  return out;
}

const EMBEDDINGS_PARTS = path.join('bucket', 'results', 'embeddings') + path.sep;
const isEmbeddingsPart = (file: string): boolean => file.startsWith(EMBEDDINGS_PARTS);

/** A run's per-unit parts in the removable tables and its finalize lists, relative to the home. */
async function runFiles(home: LocalHome, run: RunState): Promise<string[]> {
  const files: string[] = [];
  for (const table of REMOVABLE_TABLES) {
    const partition = path.join(
      'bucket',
      'results',
      table,
      `pipeline=${run.pipeline}`,
      `run_date=${runDateOf(run.runId)}`,
    );
    for (const name of await namesIn(path.join(home.dir, partition)))
      if (name.startsWith(`${run.runId}-`) && name.endsWith('.parquet'))
        files.push(path.join(partition, name));
  }
  for (const folder of REMOVABLE_RUN_FOLDERS) {
    const dir = path.join('bucket', 'runs', run.pipeline, run.runId, folder);
    for (const name of await namesIn(path.join(home.dir, dir))) files.push(path.join(dir, name));
  }
  return files;
}

/**
 * `staging/<runId>/` of runs that will not read it again: succeeded ones, and ids with no
 * run state (a plan that died before recording its run: nothing can redrive it). A
 * failed or running run keeps its staging, which its units read.
 */
async function removableStaging(home: LocalHome, runs: readonly RunState[]) {
  const status = new Map(runs.map((r) => [r.runId, r.status]));
  const root = path.join('bucket', STAGING_PREFIX);
  const files: string[] = [];
  for (const runId of await namesIn(path.join(home.dir, root))) {
    const state = status.get(runId);
    if (state === 'failed' || state === 'running') continue;
    files.push(...(await filesUnder(path.join(home.dir, root, runId), home.dir)));
  }
  return { files, bytes: await bytesOf(home.dir, files) };
}

/**
 * The lists `sluice recommend` never serves again (shared/jobs/recommend/superseded-runs.ts):
 * those of runs started before a succeeded run of the same pipeline, whatever `keepRuns`
 * says (deployed, the similarity units delete them from the serving table as they go; the
 * run's `recommendations` parts stay, for Athena-style queries of its history).
 */
async function supersededLists(home: LocalHome, runs: readonly RunState[]) {
  const files: string[] = [];
  for (const run of supersededAmong(runs))
    files.push(
      ...(await filesUnder(path.join(home.bucketDir, localListsPrefix(run.pipeline, run.runId)), home.dir)),
    );
  return { files, bytes: await bytesOf(home.dir, files) };
}

async function tempFilesUnder(dir: string, base: string) {
  const files = (await filesUnder(dir, base)).filter((f) => TEMP_FILE.test(f));
  return { files, bytes: await bytesOf(base, files) };
}

/**
 * Refuses while a live process holds a run lease here (`state/leases/*.lock`, see
 * cli/run-lease.ts): a run or redrive writes parts, staging and the chunk index.
 */
async function refuseWhileInUse(homeDir: string): Promise<void> {
  const leases = path.join(homeDir, 'state', 'leases');
  for (const name of await namesIn(leases)) {
    if (!name.endsWith('.lock')) continue;
    let holder: { pid?: number; host?: string };
    try {
      holder = JSON.parse(await readFile(path.join(leases, name), 'utf8'));
    } catch {
      continue; // torn or gone: its writer died
    }
    const elsewhere = holder.host !== undefined && holder.host !== hostname();
    if (elsewhere || (typeof holder.pid === 'number' && isAlive(holder.pid)))
      throw new UsageError(
        `run ${name.slice(0, -5)} is in use by process ${holder.pid} on ${holder.host ?? 'this host'}: run sluice gc when it ends`,
      );
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Compacts the chunk index (`state/chunk-index`), so space held by overwritten entries and
 * deletions is given back. It is opened as `sluice run` opens it, so an index an older
 * Sluice wrote is brought up to date first (its per-chunk vector entries removed, its
 * pre-LevelDB files imported). False when there is no index yet.
 */
async function compactChunkIndex(indexDir: string): Promise<boolean> {
  if ((await namesIn(path.join(indexDir, 'db'))).length === 0) return false;
  const index = new LocalChunkIndex(indexDir);
  try {
    await index.compact();
  } catch (error) {
    if (!(error instanceof ChunkIndexFileError)) throw error;
    throw new UsageError(`${error.message}, then run sluice gc`);
  } finally {
    await index.close();
  }
  return true;
}

async function removeFiles(base: string, files: readonly string[]): Promise<void> {
  const dirs = new Set<string>();
  for (const file of files) {
    await rm(path.join(base, file), { force: true });
    dirs.add(path.dirname(path.join(base, file)));
  }
  // Folders left empty go too (deepest first), never the home's own top folders.
  const stop = new Set([base, path.join(base, 'bucket'), path.join(base, 'bucket', 'results')]);
  for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
    let at = dir;
    while (!stop.has(at) && at.startsWith(base)) {
      try {
        await rmdir(at);
      } catch {
        break; // not empty
      }
      at = path.dirname(at);
    }
  }
}

async function namesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** Files under `dir`, relative to `base`. */
async function filesUnder(dir: string, base: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => path.relative(base, path.join(e.parentPath, e.name)))
      .sort();
  } catch {
    return [];
  }
}

async function bytesOf(base: string, files: readonly string[]): Promise<number> {
  let total = 0;
  for (const file of files)
    total += await stat(path.join(base, file)).then(
      (s) => s.size,
      () => 0,
    );
  return total;
}

async function bytesUnder(dir: string): Promise<number> {
  return bytesOf(dir, await filesUnder(dir, dir));
}
