import { hash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { appendFile, type FileHandle, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, describeError, SluiceError } from '../../errors/errors.ts';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import {
  type ChunkRecord,
  type DocRecord,
  decodeVector,
  encodeVector,
  groupNearby,
  isMissing,
  keyOfRecord,
  NEWLINE,
  NEWLINE_BYTES,
  type Span,
  scanLines,
  sizeOf,
} from './chunk-index/data-log.ts';
import { Memtable } from './chunk-index/memtable.ts';
import {
  BLOCK_BYTES,
  BLOCK_ENTRIES,
  blockLength,
  blockOf,
  entryLength,
  entryOffset,
  mergeRuns,
  openRun,
  type Run,
  RunReader,
  RunWriter,
  readBlocks,
  searchEntries,
} from './chunk-index/run-file.ts';

/** The manifest: which data log is current and which runs index it, up to `indexedTo`. */
interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly data: string;
  readonly generation: number;
  /** The runs cover the records before this byte of the data log; those after it are replayed on load. */
  readonly indexedTo: number;
  readonly keyLines: number;
  readonly entries: number;
  readonly liveBytes: number;
  /** Sequence number of the next run file. */
  readonly nextRun: number;
  /** Newest first. */
  readonly runs: readonly { readonly file: string; readonly entries: number }[];
}

const MANIFEST_FORMAT = 'sluice-chunk-index/2';
/** The key file of the index before it kept its keys on disk: `[key, offset, length]` lines after a header. */
const LEGACY_KEY_FILE_FORMAT = 'sluice-chunk-index/1';
const HASH_SPAN = 2 ** 52;
/** Entries appended per write, so a unit of many chunks is never one huge string. */
const APPEND_SLICE = 2048;
/** The memtable is written out once the records it indexes span this much log, so a reload replays little. */
const TAIL_MAX_BYTES = 64 * 1024 * 1024;
/** Newer runs are merged into an older one once they hold a quarter of its entries (size-tiered). */
const TIER_RATIO = 4;
/** Whatever the tiers say, never more runs than this (each is one more read per lookup). */
const MAX_RUNS = 8;
/** Runs merged at once when compaction sorts the live entries by offset. */
const MERGE_FAN_IN = 16;
/** Adjacent blocks of a run are read with one read, up to this many. */
const MAX_BLOCKS_PER_READ = 16;
/** Compaction copies live records a window of the old log at a time. */
const COPY_WINDOW_BYTES = 4 * 1024 * 1024;
const COPY_WINDOW_ENTRIES = 8192;
/** Compaction sorts the live entries by offset in pieces of at least this many. */
const MIN_SORT_PIECE = 1024;

/** A chunk index file that cannot be used as it is; the message names the file and what to do. */
export class ChunkIndexFileError extends SluiceError {}

/** Points where a write has reached disk but is not yet committed; tests stop a writer there to simulate a crash. */
export type CrashPoint = 'run-written' | 'merged' | 'compacted' | 'committed';

export interface LocalChunkIndexOptions {
  /**
   * Hashes a key (`c:<chunkId>` or `d:<docId>`) to an integer in [0, 2^52). Two keys with
   * one hash share a slot: the later hides the earlier, which then reads as a miss (its
   * chunk is embedded again, never given the other's vector). Tests pass a tiny one.
   * @default the first 52 bits of the key's sha1 ({@link sha1Hash52})
   */
  readonly hashKey?: (key: string) => number;
  /**
   * Superseded bytes a data log must hold, beyond being twice its live size, before it
   * is compacted, so small logs are not rewritten over and over.
   * @default 16 MiB
   */
  readonly compactMinBytes?: number;
  /**
   * Entries kept in memory (27 to 53 bytes each) before they are written out as a run
   * on disk: this, not the number of entries, bounds the index's memory.
   * @default 65536
   */
  readonly memtableEntries?: number;
}

const DEFAULT_OPTIONS: Required<LocalChunkIndexOptions> = {
  hashKey: sha1Hash52,
  compactMinBytes: 16 * 1024 * 1024,
  memtableEntries: 65536,
};

/** The first 13 hex digits (52 bits) of the key's sha1: exact in a double, and collisions are negligible. */
export function sha1Hash52(key: string): number {
  const digest = hash('sha1', key, 'buffer');
  return digest.readUIntBE(0, 6) * 16 + (digest[6]! >> 4);
}

/** Sizes of one pipeline's index. */
export interface ChunkIndexStats {
  /**
   * Keys with a live record. Exact for keys written since the last time every run was
   * merged; a key rewritten since is counted twice until the runs holding both meet in a merge.
   */
  readonly entries: number;
  /** Records indexed in the current data log, superseded ones included. */
  readonly keyLines: number;
  readonly dataBytes: number;
  /** Bytes of the live records, newlines included (an upper bound, like `entries`): compaction would leave this much. */
  readonly liveBytes: number;
  /** Times the data log has been compacted. */
  readonly generation: number;
  /** Why the last compaction failed, until one succeeds. */
  readonly compactionFailure: string | undefined;
  /** Run files on disk, and the entries they hold (superseded ones included). */
  readonly runs: number;
  readonly runEntries: number;
  /** Entries in memory, not yet written out as a run. */
  readonly memtableEntries: number;
  /** Bytes the index holds in memory for this pipeline: the memtable, the runs' fences and the block read buffer. */
  readonly residentBytes: number;
}

type Counters = { keyLines: number; entries: number; liveBytes: number };

/** What a lookup reads: fixed for its duration, so it never mixes two states of the index. */
interface View {
  readonly dataPath: string;
  readonly runs: readonly Run[];
  readonly memtable: Memtable;
}

interface GenerationContext {
  readonly dir: string;
  readonly pipeline: string;
  readonly manifestPath: string;
  readonly memtableEntries: number;
  crashPoint(step: CrashPoint): Promise<void> | undefined;
}

function isSafeCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  while (written < bytes.length)
    written += (await handle.write(bytes, written, bytes.length - written)).bytesWritten;
}

/** Makes renames in `dir` durable, where the platform can sync a directory. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not every platform can sync a directory.
  }
}

/** Writes `file` whole or not at all: a synced temporary file renamed over it. */
async function writeDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  await syncDir(path.dirname(file));
}

async function removeRun(run: Run): Promise<void> {
  await unlink(run.file).catch(() => undefined);
}

/**
 * One data log and the runs and memtable that index it. A generation being built by
 * compaction or a rebuild is written out the same way, and only becomes the one lookups
 * read once its manifest is committed.
 */
class Generation {
  dataSize = 0;
  /** The data log ends in a torn record (no newline): the next append starts with one. */
  dataTorn = false;
  runs: readonly Run[] = [];
  memtable = new Memtable();
  view: View;
  /** The runs cover the records before this byte; the memtable those after it. */
  indexedTo = 0;
  /** Everything indexed, runs and memtable. */
  counters: Counters = { keyLines: 0, entries: 0, liveBytes: 0 };
  /** What the runs alone hold: the manifest's figures. */
  flushed: Counters = { keyLines: 0, entries: 0, liveBytes: 0 };
  nextRun = 0;
  /** A committed manifest names this generation. */
  committed = false;
  private committedRuns = new Set<string>();
  /** Runs merged away, removed once no committed manifest names them. */
  private retired: Run[] = [];

  constructor(
    private readonly ctx: GenerationContext,
    readonly number: number,
    readonly dataPath: string,
  ) {
    this.view = this.snapshot();
  }

  get residentBytes(): number {
    return this.memtable.bytes + this.runs.reduce((sum, run) => sum + run.fences.byteLength, 0);
  }

  /** Points a key's hash at its record, newest first: the memtable is newer than every run. */
  ingest(hashed: number, offset: number, length: number): void {
    const previous = this.memtable.set(hashed, offset, length);
    this.counters.keyLines += 1;
    if (previous < 0) {
      this.counters.entries += 1;
      this.counters.liveBytes += length + 1;
    } else this.counters.liveBytes += length - previous;
  }

  /** Whether the memtable should be written out, the data log now ending at `end`. */
  shouldFlush(end: number): boolean {
    return (
      this.memtable.size >= this.ctx.memtableEntries ||
      (this.memtable.size > 0 && end - this.indexedTo >= TAIL_MAX_BYTES)
    );
  }

  /**
   * Writes the memtable out as the newest run (covering the log up to `end`), merges runs
   * by size tier, and commits when `commit` is set (a generation being built commits once,
   * at the end).
   */
  async writeOut(end: number, commit: boolean): Promise<void> {
    await this.flush(end);
    try {
      await this.mergeTiers();
    } finally {
      if (commit) await this.commit();
    }
  }

  /** Merges every run into one: afterwards `counters` are exact. */
  async mergeAll(): Promise<void> {
    if (this.runs.length > 1) await this.merge(this.runs.length);
  }

  /**
   * Writes the manifest (after syncing the data log it covers), then makes the current
   * runs and memtable what lookups read and removes the runs merged away. Up to the
   * rename, a crash leaves the previous manifest, whose files are all still there.
   */
  async commit(): Promise<void> {
    let failure: unknown;
    try {
      if (this.indexedTo > 0) {
        const data = await open(this.dataPath, 'r+');
        try {
          await data.datasync();
        } finally {
          await data.close();
        }
      }
      const manifest: Manifest = {
        format: MANIFEST_FORMAT,
        data: path.basename(this.dataPath),
        generation: this.number,
        indexedTo: this.indexedTo,
        ...this.flushed,
        nextRun: this.nextRun,
        runs: this.runs.map((run) => ({ file: run.name, entries: run.entries })),
      };
      await writeDurably(this.ctx.manifestPath, `${JSON.stringify(manifest)}\n`);
      this.committed = true;
      this.committedRuns = new Set(this.runs.map((run) => run.name));
      await this.ctx.crashPoint('committed');
    } catch (error) {
      failure = error;
    }
    this.publish();
    const kept: Run[] = [];
    for (const run of this.retired) {
      if (this.committedRuns.has(run.name)) kept.push(run);
      else await removeRun(run);
    }
    this.retired = kept;
    if (failure !== undefined) throw failure;
  }

  /** Notes that the manifest just read names the current runs. */
  markCommitted(): void {
    this.committed = true;
    this.committedRuns = new Set(this.runs.map((run) => run.name));
  }

  /** Makes the current state what lookups read. */
  publish(): void {
    this.view = this.snapshot();
  }

  /** Every run of this generation, merged away or not. */
  allRuns(): Run[] {
    return [...this.runs, ...this.retired];
  }

  runPath(seq: number): string {
    return path.join(this.ctx.dir, `${this.ctx.pipeline}.${this.number}.${seq}.run`);
  }

  private snapshot(): View {
    return { dataPath: this.dataPath, runs: this.runs, memtable: this.memtable };
  }

  private async flush(end: number): Promise<void> {
    if (this.memtable.size > 0) {
      const run = await RunWriter.write(this.runPath(this.nextRun++), this.memtable.sorted());
      await this.ctx.crashPoint('run-written');
      this.runs = [run, ...this.runs];
      this.memtable = new Memtable();
    }
    this.indexedTo = end;
    this.flushed = { ...this.counters };
  }

  private async mergeTiers(): Promise<void> {
    for (;;) {
      const count = this.tierToMerge();
      if (count < 2) return;
      await this.merge(count);
    }
  }

  /** How many of the newest runs to merge: while the newer ones hold a quarter of the next, it joins them. */
  private tierToMerge(): number {
    let count = 0;
    let newer = 0;
    for (let i = 0; i + 1 < this.runs.length; i += 1) {
      newer += this.runs[i]!.entries;
      if (newer * TIER_RATIO < this.runs[i + 1]!.entries) break;
      count = i + 2;
    }
    return Math.max(count, this.runs.length - MAX_RUNS + 1);
  }

  /** Merges the `count` newest runs into one; a key in several keeps its newest entry. */
  private async merge(count: number): Promise<void> {
    const inputs = this.runs.slice(0, count);
    const writer = await RunWriter.create(this.runPath(this.nextRun++));
    let droppedEntries = 0;
    let droppedBytes = 0;
    try {
      await mergeRuns(
        inputs,
        'hash',
        (hashed, offset, length) => writer.add(hashed, offset, length),
        (length) => {
          droppedEntries += 1;
          droppedBytes += length + 1;
        },
      );
    } catch (error) {
      await writer.abort();
      throw error;
    }
    const run = await writer.finish();
    await this.ctx.crashPoint('merged');
    this.runs = [run, ...this.runs.slice(count)];
    this.retired.push(...inputs);
    for (const counters of [this.counters, this.flushed]) {
      counters.entries -= droppedEntries;
      counters.liveBytes -= droppedBytes;
    }
  }
}

/** One pipeline's index and what this process knows of it. */
interface PipelineLog {
  readonly pipeline: string;
  readonly context: GenerationContext;
  gen: Generation;
  /** After a compaction failed, the data log size at which it is tried again. */
  compactAt: number;
  compactionFailure: string | undefined;
  writes: Promise<void>;
}

/**
 * The chunk index of one machine, with memory bounded by a constant, not by the number
 * of entries. Per pipeline, under `<dir>/`:
 *
 * - `<pipeline>.jsonl` (`<pipeline>.<n>.jsonl` after the n-th compaction): the data log,
 *   append-only JSON lines, one per chunk (`{c, h, v, r}`, vector in base64) or document
 *   (`{d, n}`); later lines supersede earlier ones for the same key. It is the source of
 *   truth: everything else can be rebuilt from it.
 * - `<pipeline>.<n>.<seq>.run`: immutable runs of fixed-width entries (52-bit key hash,
 *   offset, length) sorted by hash, newest first in the manifest (LSM-style); a newer
 *   run's entry supersedes an older one's.
 * - `<pipeline>.manifest`: the current data log, its runs, and up to which byte they
 *   cover it; replaced whole by a rename, which is how every change commits.
 *
 * In memory there is a memtable of the entries written since the last run (at most
 * `memtableEntries`) and, per run, the first hash of each 4 KiB block. A lookup sorts
 * its hashes, looks in the memtable, then reads each block it needs of each run once,
 * newest run first, then reads the records with positional reads and checks the key
 * each holds, so a hash collision is a miss. When the memtable is full it is written out
 * as a run and runs of similar size are merged (at most a handful remain); on load,
 * records past the manifest's `indexedTo` are replayed into the memtable. A crash leaves
 * at worst unreferenced files (removed on load) and a torn last line (ignored). When
 * superseded records outweigh live ones the log is rewritten into a new generation.
 * One process writes a directory at a time.
 */
export class LocalChunkIndex implements ChunkIndex {
  private readonly logs = new Map<string, Promise<PipelineLog>>();
  private readonly options: Required<LocalChunkIndexOptions>;
  /** Where lookups read run blocks; one is enough, as those reads are synchronous. */
  private blockBuffer: Buffer | undefined;

  constructor(
    readonly dir: string,
    options: LocalChunkIndexOptions = {},
  ) {
    const unknown = Object.keys(options).filter((key) => !(key in DEFAULT_OPTIONS));
    if (unknown.length > 0) throw new ConfigError(`LocalChunkIndex: unknown option(s) ${unknown.join(', ')}`);
    this.options = { ...DEFAULT_OPTIONS, ...options };
    if (typeof this.options.hashKey !== 'function')
      throw new ConfigError('LocalChunkIndex: hashKey must be a function of a key to [0, 2^52)');
    if (!Number.isSafeInteger(this.options.compactMinBytes) || this.options.compactMinBytes < 0)
      throw new ConfigError('LocalChunkIndex: compactMinBytes must be a whole number of bytes, 0 or more');
    if (!Number.isSafeInteger(this.options.memtableEntries) || this.options.memtableEntries < 1)
      throw new ConfigError('LocalChunkIndex: memtableEntries must be a whole number, 1 or more');
  }

  async lookupChunks(pipeline: string, chunkIds: readonly string[]): Promise<Map<string, IndexedChunk>> {
    const found = new Map<string, IndexedChunk>();
    for (const [id, record] of await this.read(pipeline, 'c', chunkIds)) {
      if (typeof record.h !== 'string' || typeof record.r !== 'string' || typeof record.v !== 'string')
        continue;
      const embedding = decodeVector(record.v);
      if (embedding) found.set(id, { chunkId: id, textSha256: record.h, embedding, runId: record.r });
    }
    return found;
  }

  async lookupDocs(pipeline: string, docIds: readonly string[]): Promise<Map<string, IndexedDoc>> {
    const found = new Map<string, IndexedDoc>();
    for (const [id, record] of await this.read(pipeline, 'd', docIds)) {
      if (!Number.isSafeInteger(record.n)) continue;
      found.set(id, {
        docId: id,
        chunkCount: record.n!,
        ...(typeof record.s === 'string' ? { sourceKey: record.s } : {}),
      });
    }
    return found;
  }

  async record(
    pipeline: string,
    chunks: readonly IndexedChunk[],
    docs: readonly IndexedDoc[],
  ): Promise<void> {
    const log = await this.open(pipeline);
    const total = chunks.length + docs.length;
    if (total === 0) return;
    const entryOf = (i: number): { key: string; hash: number; line: string } => {
      const chunk = chunks[i];
      if (chunk) {
        const key = `c:${chunk.chunkId}`;
        return {
          key,
          hash: this.hashOf(key),
          line: JSON.stringify({
            c: chunk.chunkId,
            h: chunk.textSha256,
            v: encodeVector(chunk.embedding),
            r: chunk.runId,
          } satisfies ChunkRecord),
        };
      }
      const doc = docs[i - chunks.length]!;
      const key = `d:${doc.docId}`;
      return {
        key,
        hash: this.hashOf(key),
        line: JSON.stringify({ d: doc.docId, n: doc.chunkCount, s: doc.sourceKey } satisfies DocRecord),
      };
    };
    await this.serialise(log, async () => {
      for (let i = 0; i < total; ) {
        const gen = log.gen;
        // Slices stop where the memtable is full, so it never holds more than memtableEntries.
        const room = Math.max(1, this.options.memtableEntries - gen.memtable.size);
        const count = Math.min(APPEND_SLICE, total - i, room);
        await this.append(
          gen,
          Array.from({ length: count }, (_, j) => entryOf(i + j)),
        );
        i += count;
        if (gen.shouldFlush(gen.dataSize)) await gen.writeOut(gen.dataSize, true);
      }
      const gen = log.gen;
      const live = gen.counters.liveBytes;
      const dead = gen.dataSize - live;
      // `live` is an upper bound (a key rewritten since its runs last merged counts twice), so
      // this never compacts a log that is not mostly dead; it may wait for a merge to see it is.
      if (dead <= live || dead < this.options.compactMinBytes || gen.dataSize < log.compactAt) return;
      try {
        await this.compact(log);
        log.compactionFailure = undefined;
      } catch (error) {
        // The records are written and the old log is intact: the index works, only larger.
        // Trying again on every write would copy the log each time, so wait for it to grow by half.
        log.compactionFailure = describeError(error);
        log.compactAt = log.gen.dataSize * 1.5;
      }
    });
  }

  /** Sizes of a pipeline's index (loading it if needed). */
  async stats(pipeline: string): Promise<ChunkIndexStats> {
    const log = await this.open(pipeline);
    const { gen } = log;
    return {
      entries: gen.counters.entries,
      keyLines: gen.counters.keyLines,
      dataBytes: gen.dataSize,
      liveBytes: gen.counters.liveBytes,
      generation: gen.number,
      compactionFailure: log.compactionFailure,
      runs: gen.runs.length,
      runEntries: gen.runs.reduce((sum, run) => sum + run.entries, 0),
      memtableEntries: gen.memtable.size,
      residentBytes: gen.residentBytes + (this.blockBuffer?.length ?? 0),
    };
  }

  /**
   * Called where a write has reached disk but is not yet committed (and just after a
   * commit, before the files it replaced are removed). Does nothing; a test overrides it
   * with a promise that never settles to leave the files as a crash there would.
   */
  protected crashPoint(_step: CrashPoint): Promise<void> | undefined {
    return undefined;
  }

  private hashOf(key: string): number {
    const value = this.options.hashKey(key);
    if (!Number.isSafeInteger(value) || value < 0 || value >= HASH_SPAN)
      throw new ConfigError(`LocalChunkIndex: hashKey returned ${value}, not an integer in [0, 2^52)`);
    return value;
  }

  /** Writes of one pipeline run one after another; a failed write does not stop the next. */
  private serialise(log: PipelineLog, task: () => Promise<void>): Promise<void> {
    const run = log.writes.then(task);
    log.writes = run.catch(() => undefined);
    return run;
  }

  /**
   * The records of the ids asked for, keyed `c:<id>` or `d:<id>` by `kind`, that hold
   * that id: a record another key's hash led to is a miss.
   */
  private async read(
    pipeline: string,
    kind: 'c' | 'd',
    ids: readonly string[],
  ): Promise<Map<string, Partial<ChunkRecord & DocRecord>>> {
    const log = await this.open(pipeline);
    const unique = [...new Set(ids)];
    const hashes = unique.map((id) => this.hashOf(`${kind}:${id}`));
    for (;;) {
      // Compaction removes the old data log once lookups read the new one: a lookup that
      // began on the old one and finds it gone starts again. A run is only removed once no
      // view names it, and a lookup reads its runs in the turn it takes its view.
      const view = log.gen.view;
      try {
        return await this.readView(view, kind, unique, hashes);
      } catch (error) {
        if (!isMissing(error)) throw error;
        if (log.gen.view !== view) continue;
        const missing = (error as NodeJS.ErrnoException).path;
        // The data log is gone with nothing newer: the index is empty until it is written again.
        if (missing === view.dataPath) return new Map();
        throw new ChunkIndexFileError(
          `${missing} is missing; remove ${log.context.manifestPath} and the index is rebuilt from the data log`,
        );
      }
    }
  }

  private async readView(
    view: View,
    kind: 'c' | 'd',
    ids: readonly string[],
    hashes: readonly number[],
  ): Promise<Map<string, Partial<ChunkRecord & DocRecord>>> {
    const found = new Map<string, Partial<ChunkRecord & DocRecord>>();
    // Resolved before the first await, so the view's runs are all still open.
    const spans = this.locate(view, ids, hashes);
    if (spans.length === 0) return found;
    const handle = await open(view.dataPath, 'r');
    try {
      await Promise.all(
        groupNearby(spans).map(async (group) => {
          const first = group[0]!;
          const last = group.at(-1)!;
          const bytes = Buffer.allocUnsafe(last.offset + last.length - first.offset);
          const { bytesRead } = await handle.read(bytes, 0, bytes.length, first.offset);
          for (const span of group) {
            const from = span.offset - first.offset;
            // A record cut short (the log lost its tail) or not valid JSON is a miss.
            if (from + span.length > bytesRead) continue;
            try {
              const record = JSON.parse(bytes.toString('utf8', from, from + span.length)) as Partial<
                ChunkRecord & DocRecord
              >;
              if (record[kind] === span.key) found.set(span.key, record);
            } catch {
              // Not a record.
            }
          }
        }),
      );
      return found;
    } finally {
      await handle.close();
    }
  }

  /**
   * Where the records of `ids` (with `hashes`) are, in log order; ids with no entry are
   * left out. The hashes are sorted and looked up in the memtable, then in each run,
   * newest first, until found: the first entry found for a hash is its newest.
   */
  private locate(view: View, ids: readonly string[], hashes: readonly number[]): Span[] {
    const sorted = Float64Array.from(new Set(hashes)).sort();
    const offsets = new Float64Array(sorted.length).fill(-1);
    const lengths = new Float64Array(sorted.length);
    let pending: number[] = [];
    for (let i = 0; i < sorted.length; i += 1) {
      const slot = view.memtable.find(sorted[i]!);
      if (slot < 0) pending.push(i);
      else {
        offsets[i] = view.memtable.offsetAt(slot);
        lengths[i] = view.memtable.lengthAt(slot);
      }
    }
    for (const run of view.runs) {
      if (pending.length === 0) break;
      // Opened here, not kept open: runs come and go with merges, and an open costs little
      // beside a lookup's reads. The view's runs are all on disk until a newer view replaces it.
      const fd = openSync(run.file, 'r');
      try {
        pending = this.searchRun(run, fd, sorted, pending, offsets, lengths);
      } finally {
        closeSync(fd);
      }
    }
    const spans: Span[] = [];
    ids.forEach((key, i) => {
      const at = searchSorted(sorted, hashes[i]!);
      if (offsets[at]! >= 0) spans.push({ key, offset: offsets[at]!, length: lengths[at]! });
    });
    return spans.sort((a, b) => a.offset - b.offset);
  }

  /**
   * Looks up the `pending` hashes (indexes into `hashes`, ascending) in one run, reading
   * each block needed once (adjacent ones together); returns those it does not hold.
   */
  private searchRun(
    run: Run,
    fd: number,
    hashes: Float64Array,
    pending: readonly number[],
    offsets: Float64Array,
    lengths: Float64Array,
  ): number[] {
    this.blockBuffer ??= Buffer.allocUnsafe(MAX_BLOCKS_PER_READ * BLOCK_BYTES);
    const buffer = this.blockBuffer;
    const absent: number[] = [];
    let i = 0;
    while (i < pending.length) {
      const first = blockOf(run, hashes[pending[i]!]!);
      if (first < 0) {
        absent.push(pending[i]!);
        i += 1;
        continue;
      }
      // The pending hashes in this block and the adjacent ones after it, read at once.
      let j = i + 1;
      let last = first;
      for (; j < pending.length; j += 1) {
        const block = blockOf(run, hashes[pending[j]!]!);
        if (block > last + 1 || block - first >= MAX_BLOCKS_PER_READ) break;
        last = block;
      }
      readBlocks(run, fd, buffer, first, last);
      for (; i < j; i += 1) {
        const p = pending[i]!;
        const block = blockOf(run, hashes[p]!);
        const entry = searchEntries(
          buffer,
          (block - first) * BLOCK_ENTRIES,
          blockLength(run, block),
          hashes[p]!,
        );
        if (entry < 0) absent.push(p);
        else {
          offsets[p] = entryOffset(buffer, entry);
          lengths[p] = entryLength(buffer, entry);
        }
      }
    }
    return absent;
  }

  private open(pipeline: string): Promise<PipelineLog> {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(pipeline)) throw new Error(`invalid pipeline name "${pipeline}"`);
    let log = this.logs.get(pipeline);
    if (!log) {
      log = this.load(pipeline);
      this.logs.set(pipeline, log);
      // A load that failed (a file unreadable for now) is tried again on the next call.
      log.catch(() => this.logs.delete(pipeline));
    }
    return log;
  }

  private dataLogPattern(pipeline: string): RegExp {
    return new RegExp(`^${pipeline}(?:\\.(\\d+))?\\.jsonl$`);
  }

  private runPattern(pipeline: string): RegExp {
    return new RegExp(`^${pipeline}\\.(\\d+)\\.(\\d+)\\.run$`);
  }

  private async load(pipeline: string): Promise<PipelineLog> {
    const context: GenerationContext = {
      dir: this.dir,
      pipeline,
      manifestPath: path.join(this.dir, `${pipeline}.manifest`),
      memtableEntries: this.options.memtableEntries,
      crashPoint: (step) => this.crashPoint(step),
    };
    const manifest = await this.readManifest(context);
    const gen =
      (manifest && (await this.resume(context, manifest))) ?? (await this.rebuild(context, manifest));
    await this.removeStaleFiles(pipeline, gen);
    return { pipeline, context, gen, compactAt: 0, compactionFailure: undefined, writes: Promise.resolve() };
  }

  private async readManifest(context: GenerationContext): Promise<Manifest | undefined> {
    let text: string;
    try {
      const handle = await open(context.manifestPath, 'r');
      try {
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    let manifest: Partial<Manifest> = {};
    try {
      manifest = JSON.parse(text) as Partial<Manifest>;
    } catch {
      // Reported below.
    }
    const runPattern = this.runPattern(context.pipeline);
    const valid =
      manifest.format === MANIFEST_FORMAT &&
      typeof manifest.data === 'string' &&
      this.dataLogPattern(context.pipeline).test(manifest.data) &&
      [
        manifest.generation,
        manifest.indexedTo,
        manifest.keyLines,
        manifest.entries,
        manifest.liveBytes,
        manifest.nextRun,
      ].every(isSafeCount) &&
      Array.isArray(manifest.runs) &&
      manifest.runs.every(
        (run) =>
          typeof run?.file === 'string' &&
          runPattern.exec(run.file)?.[1] === String(manifest.generation) &&
          isSafeCount(run.entries) &&
          run.entries > 0,
      );
    if (!valid)
      throw new ChunkIndexFileError(
        `${context.manifestPath} is not a ${MANIFEST_FORMAT} manifest; remove it and the index is rebuilt from the data log`,
      );
    return manifest as Manifest;
  }

  /**
   * The generation a manifest names, with the records past its runs replayed into the
   * memtable; undefined when its files are not all there and whole, so that it is rebuilt.
   */
  private async resume(context: GenerationContext, manifest: Manifest): Promise<Generation | undefined> {
    const gen = new Generation(context, manifest.generation, path.join(this.dir, manifest.data));
    const size = await sizeOf(gen.dataPath);
    // A log shorter than its runs cover lost synced bytes: its runs may point past its end.
    if (size === undefined ? manifest.indexedTo > 0 || manifest.runs.length > 0 : size < manifest.indexedTo)
      return undefined;
    const runs: Run[] = [];
    for (const { file, entries } of manifest.runs) {
      const run = await openRun(path.join(this.dir, file), entries);
      if (!run) return undefined;
      runs.push(run);
    }
    gen.runs = runs;
    gen.indexedTo = manifest.indexedTo;
    gen.counters = { keyLines: manifest.keyLines, entries: manifest.entries, liveBytes: manifest.liveBytes };
    gen.flushed = { ...gen.counters };
    gen.nextRun = manifest.nextRun;
    gen.markCommitted();
    await this.measureDataLog(gen);
    if (gen.dataSize > gen.indexedTo && (await this.ingestLog(gen, gen.indexedTo))) await gen.commit();
    gen.publish();
    return gen;
  }

  /**
   * Builds the index of a data log from the log itself: the one the manifest names if it
   * is there, else the one a key file of the previous format names, else the newest.
   */
  private async rebuild(context: GenerationContext, manifest: Manifest | undefined): Promise<Generation> {
    const { pipeline } = context;
    let source: { file: string; generation: number } | undefined;
    if (manifest && (await sizeOf(path.join(this.dir, manifest.data))) !== undefined)
      source = { file: path.join(this.dir, manifest.data), generation: manifest.generation };
    source ??= await this.legacyDataLog(pipeline);
    source ??= await this.newestDataLog(pipeline);
    const gen = new Generation(
      context,
      source?.generation ?? 0,
      source?.file ?? path.join(this.dir, `${pipeline}.jsonl`),
    );
    // Run names never reuse one a damaged manifest still names.
    gen.nextRun = Math.max(manifest?.nextRun ?? 0, await this.nextFreeRun(pipeline, gen.number));
    if (source) {
      await this.measureDataLog(gen);
      await this.ingestLog(gen, 0);
    }
    if (source || manifest) await gen.commit();
    return gen;
  }

  /**
   * Indexes the records of the data log from byte `from`, writing runs out as the
   * memtable fills; returns whether it wrote any (they are then not yet committed).
   */
  private async ingestLog(gen: Generation, from: number): Promise<boolean> {
    let wrote = false;
    await scanLines(gen.dataPath, from, (text, offset, length) => {
      const key = keyOfRecord(text);
      if (key === undefined) return;
      gen.ingest(this.hashOf(key), offset, length);
      const end = offset + length + 1;
      if (!gen.shouldFlush(end)) return;
      wrote = true;
      return gen.writeOut(end, false);
    });
    return wrote;
  }

  /** The data log named by a key file of the previous format, which is otherwise not read: the log is rescanned. */
  private async legacyDataLog(pipeline: string): Promise<{ file: string; generation: number } | undefined> {
    const keysPath = path.join(this.dir, `${pipeline}.keys`);
    let handle: FileHandle;
    try {
      handle = await open(keysPath, 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    let header: { format?: unknown; data?: unknown; generation?: unknown } = {};
    try {
      const bytes = Buffer.alloc(4096);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
      const nl = bytes.subarray(0, bytesRead).indexOf(NEWLINE);
      if (nl > 0) header = JSON.parse(bytes.toString('utf8', 0, nl)) as typeof header;
    } catch {
      // Reported below.
    } finally {
      await handle.close();
    }
    const match = typeof header.data === 'string' ? this.dataLogPattern(pipeline).exec(header.data) : null;
    if (header.format !== LEGACY_KEY_FILE_FORMAT || !match || !Number.isSafeInteger(header.generation))
      throw new ChunkIndexFileError(
        `${keysPath} is not a ${LEGACY_KEY_FILE_FORMAT} key file; remove it and the index is rebuilt from the data log`,
      );
    const file = path.join(this.dir, header.data as string);
    if ((await sizeOf(file)) === undefined) return undefined;
    return { file, generation: header.generation as number };
  }

  private async newestDataLog(pipeline: string): Promise<{ file: string; generation: number } | undefined> {
    const pattern = this.dataLogPattern(pipeline);
    let newest: { file: string; generation: number } | undefined;
    for (const name of await this.names()) {
      const match = pattern.exec(name);
      if (!match) continue;
      const generation = Number(match[1] ?? 0);
      if (!newest || generation > newest.generation) newest = { file: path.join(this.dir, name), generation };
    }
    return newest;
  }

  private async nextFreeRun(pipeline: string, generation: number): Promise<number> {
    const pattern = this.runPattern(pipeline);
    let next = 0;
    for (const name of await this.names()) {
      const match = pattern.exec(name.replace(/\.tmp$/, ''));
      if (match && Number(match[1]) === generation) next = Math.max(next, Number(match[2]) + 1);
    }
    return next;
  }

  private async names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  private async measureDataLog(gen: Generation): Promise<void> {
    const size = await sizeOf(gen.dataPath);
    gen.dataSize = size ?? 0;
    gen.dataTorn = false;
    if (!size) return;
    const handle = await open(gen.dataPath, 'r');
    try {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      gen.dataTorn = last[0] !== NEWLINE;
    } finally {
      await handle.close();
    }
  }

  /**
   * Removes what the committed manifest does not name: data logs of other generations,
   * runs, temporary files a crash left behind, and a key file of the previous format.
   */
  private async removeStaleFiles(pipeline: string, gen: Generation): Promise<void> {
    if (!gen.committed) return;
    const dataLog = this.dataLogPattern(pipeline);
    const run = this.runPattern(pipeline);
    const named = new Set([gen.dataPath, ...gen.allRuns().map((run) => run.file)]);
    for (const name of await this.names()) {
      const file = path.join(this.dir, name);
      const stale =
        name === `${pipeline}.keys` ||
        (name.startsWith(`${pipeline}.`) && name.endsWith('.tmp')) ||
        ((dataLog.test(name) || run.test(name)) && !named.has(file));
      if (stale) await unlink(file).catch(() => undefined);
    }
  }

  /** Appends records, then indexes them in the memtable; only then can a lookup find them. */
  private async append(
    gen: Generation,
    entries: readonly { key: string; hash: number; line: string }[],
  ): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // The first write names its data log in a manifest, so a compaction cut short is never taken for it.
    if (!gen.committed) await gen.commit();
    const lead = gen.dataTorn ? '\n' : '';
    let offset = gen.dataSize + lead.length;
    const placed: { hash: number; offset: number; length: number }[] = [];
    const data: string[] = [lead];
    for (const { hash: hashed, line } of entries) {
      const length = Buffer.byteLength(line);
      placed.push({ hash: hashed, offset, length });
      data.push(line, '\n');
      offset += length + 1;
    }
    try {
      await appendFile(gen.dataPath, data.join(''));
    } catch (error) {
      gen.dataTorn = true;
      gen.dataSize = (await sizeOf(gen.dataPath).catch(() => undefined)) ?? gen.dataSize;
      throw error;
    }
    gen.dataSize = offset;
    gen.dataTorn = false;
    for (const entry of placed) gen.ingest(entry.hash, entry.offset, entry.length);
  }

  /**
   * Copies the live records into the next generation's data log, in log order, indexing
   * them as it goes, and commits by renaming the manifest. Lookups keep reading the old
   * log and runs until then; a crash before the rename leaves the old files as they were.
   *
   * The live set is what remains after merging every run into one (in hash order); it
   * is cut into pieces sorted by offset and merged back by offset, so the old log is read
   * front to back and nothing is held in memory beyond a piece.
   */
  private async compact(log: PipelineLog): Promise<void> {
    const old = log.gen;
    await old.writeOut(old.dataSize, true);
    if (old.runs.length > 1) {
      try {
        await old.mergeAll();
      } finally {
        await old.commit();
      }
    }
    const live = old.runs[0];
    const next = new Generation(
      log.context,
      old.number + 1,
      path.join(this.dir, `${log.pipeline}.${old.number + 1}.jsonl`),
    );
    const temps: string[] = [];
    const opened: FileHandle[] = [];
    const openTracked = async (file: string, flags: string): Promise<FileHandle> => {
      const handle = await open(file, flags);
      opened.push(handle);
      return handle;
    };
    const closeAll = () => Promise.all(opened.splice(0).map((handle) => handle.close()));
    try {
      const out = await openTracked(next.dataPath, 'w');
      const source = await openTracked(old.dataPath, 'r');
      const pieces = live ? await this.sortByOffset(log.pipeline, next, live, temps) : [];
      let written = 0;
      let batch: { hash: number; offset: number; length: number }[] = [];
      const copy = async (): Promise<void> => {
        const first = batch[0];
        const last = batch.at(-1);
        if (!first || !last) return;
        const bytes = Buffer.allocUnsafe(last.offset + last.length - first.offset);
        const { bytesRead } = await source.read(bytes, 0, bytes.length, first.offset);
        const records: Buffer[] = [];
        for (const entry of batch) {
          const from = entry.offset - first.offset;
          // A record the log lost is not copied: its key is then a miss.
          if (from + entry.length > bytesRead) continue;
          records.push(bytes.subarray(from, from + entry.length), NEWLINE_BYTES);
          next.ingest(entry.hash, written, entry.length);
          written += entry.length + 1;
        }
        batch = [];
        await writeAll(out, Buffer.concat(records));
        next.dataSize = written;
        if (next.shouldFlush(written)) await next.writeOut(written, false);
      };
      await mergeRuns(pieces, 'offset', (hashed, offset, length) => {
        const first = batch[0];
        const full =
          first !== undefined &&
          (offset + length - first.offset > COPY_WINDOW_BYTES || batch.length >= COPY_WINDOW_ENTRIES);
        if (!full) {
          batch.push({ hash: hashed, offset, length });
          return undefined;
        }
        return copy().then(() => {
          batch.push({ hash: hashed, offset, length });
        });
      });
      await copy();
      await out.sync();
      await closeAll();
      await this.crashPoint('compacted');
      await next.commit();
    } catch (error) {
      await closeAll().catch(() => undefined);
      if (!next.committed) {
        await Promise.all(next.allRuns().map(removeRun));
        await Promise.all([next.dataPath, ...temps].map((file) => unlink(file).catch(() => undefined)));
      }
      throw error;
    } finally {
      await Promise.all(temps.map((file) => unlink(file).catch(() => undefined)));
    }
    // Committed on disk; lookups now read the new generation (one that began on the old finds it gone and starts again).
    log.gen = next;
    await Promise.all(old.allRuns().map(removeRun));
    await unlink(old.dataPath).catch(() => undefined);
  }

  /**
   * The entries of `live` (sorted by hash) as at most {@link MERGE_FAN_IN} temporary runs
   * sorted by offset: pieces of `memtableEntries` sorted in memory, merged 16 at a time.
   */
  private async sortByOffset(
    pipeline: string,
    next: Generation,
    live: Run,
    temps: string[],
  ): Promise<{ file: string; entries: number }[]> {
    const pieceSize = Math.max(this.options.memtableEntries, MIN_SORT_PIECE);
    let seq = 0;
    const tempPath = () => {
      const file = path.join(this.dir, `${pipeline}.${next.number}.sort${seq++}.tmp`);
      temps.push(file);
      return file;
    };
    let pieces: { file: string; entries: number }[] = [];
    const hashes = new Float64Array(Math.min(pieceSize, live.entries));
    const offsets = new Float64Array(hashes.length);
    const lengths = new Uint32Array(hashes.length);
    let count = 0;
    const writePiece = async (): Promise<void> => {
      const order = Uint32Array.from({ length: count }, (_, i) => i).sort(
        (a, b) => offsets[a]! - offsets[b]!,
      );
      const run = await RunWriter.write(
        tempPath(),
        { hashes, offsets, lengths },
        { sortedByHash: false, order },
      );
      pieces.push({ file: run.file, entries: run.entries });
      count = 0;
    };
    const reader = await RunReader.open(live);
    try {
      while (!reader.done) {
        hashes[count] = reader.hash;
        offsets[count] = reader.offset;
        lengths[count] = reader.length;
        count += 1;
        if (count === hashes.length) await writePiece();
        const moved = reader.next();
        if (moved) await moved;
      }
    } finally {
      await reader.close();
    }
    if (count > 0) await writePiece();
    while (pieces.length > MERGE_FAN_IN) {
      const merged: { file: string; entries: number }[] = [];
      for (let i = 0; i < pieces.length; i += MERGE_FAN_IN) {
        const group = pieces.slice(i, i + MERGE_FAN_IN);
        if (group.length === 1) {
          merged.push(group[0]!);
          continue;
        }
        const writer = await RunWriter.create(tempPath(), false);
        try {
          await mergeRuns(group, 'offset', (hashed, offset, length) => writer.add(hashed, offset, length));
        } catch (error) {
          await writer.abort();
          throw error;
        }
        const run = await writer.finish();
        merged.push({ file: run.file, entries: run.entries });
        await Promise.all(group.map((piece) => unlink(piece.file).catch(() => undefined)));
      }
      pieces = merged;
    }
    return pieces;
  }
}

/** The index of `value` in ascending `sorted`, which holds it. */
function searchSorted(sorted: Float64Array, value: number): number {
  let low = 0;
  let high = sorted.length - 1;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! < value) low = mid + 1;
    else high = mid;
  }
  return low;
}
