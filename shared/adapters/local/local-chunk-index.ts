import { hash } from 'node:crypto';
import {
  appendFile,
  type FileHandle,
  mkdir,
  open,
  readdir,
  rename,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, describeError, SluiceError } from '../../errors/errors.ts';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';

/** A line of the data log. The same JSON lines the index wrote before it had key files, so old logs load. */
type ChunkRecord = { c: string; h: string; v: string; r: string };
type DocRecord = { d: string; n: number };

/** A key file's first line: which data log its offsets point into. */
interface KeyFileHeader {
  readonly format: typeof KEY_FILE_FORMAT;
  readonly data: string;
  readonly generation: number;
}

const KEY_FILE_FORMAT = 'sluice-chunk-index/1';
const HASH_SPAN = 2 ** 52;
const SHARDS = 64;
const SHARD_SPAN = HASH_SPAN / SHARDS;
const INITIAL_SHARD_SLOTS = 64;
const MAX_LOAD = 0.75;
/** Entries appended per write, so a unit of many chunks is never one huge string. */
const APPEND_SLICE = 2048;
/** Records closer than this in the log are read with one positional read. */
const READ_GAP_BYTES = 4096;
const READ_GROUP_MAX_BYTES = 1024 * 1024;
const SCAN_BLOCK_BYTES = 1024 * 1024;
/** Compaction reads the old log this much at a time. */
const COPY_WINDOW_BYTES = 4 * 1024 * 1024;
const NEWLINE = 10;
const NEWLINE_BYTES = Buffer.of(NEWLINE);

/** A chunk index file that cannot be used as it is; the message names the file and what to do. */
export class ChunkIndexFileError extends SluiceError {}

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
}

const DEFAULT_OPTIONS: Required<LocalChunkIndexOptions> = {
  hashKey: sha1Hash52,
  compactMinBytes: 16 * 1024 * 1024,
};

/** The first 13 hex digits (52 bits) of the key's sha1: exact in a double, and collisions are negligible. */
export function sha1Hash52(key: string): number {
  const digest = hash('sha1', key, 'buffer');
  return digest.readUIntBE(0, 6) * 16 + (digest[6]! >> 4);
}

/** One open-addressing table (linear probing) of 52-bit hashes to a record's offset and length. */
class OffsetShard {
  /** Hash + 1 per slot; 0 marks an empty slot. */
  tags: Float64Array;
  offsets: Float64Array;
  lengths: Uint32Array;
  size = 0;

  constructor(slots: number) {
    this.tags = new Float64Array(slots);
    this.offsets = new Float64Array(slots);
    this.lengths = new Uint32Array(slots);
  }

  find(tag: number): number {
    const mask = this.tags.length - 1;
    for (let slot = (tag >>> 0) & mask; ; slot = (slot + 1) & mask) {
      const found = this.tags[slot];
      if (found === tag) return slot;
      if (found === 0) return -1;
    }
  }

  /** Points `tag` at a record; returns the length it pointed at before, or -1 if it was new. */
  set(tag: number, offset: number, length: number): number {
    if (this.size + 1 > this.tags.length * MAX_LOAD) this.grow();
    const mask = this.tags.length - 1;
    let slot = (tag >>> 0) & mask;
    for (; this.tags[slot] !== 0; slot = (slot + 1) & mask) {
      if (this.tags[slot] === tag) {
        const previous = this.lengths[slot]!;
        this.offsets[slot] = offset;
        this.lengths[slot] = length;
        return previous;
      }
    }
    this.tags[slot] = tag;
    this.offsets[slot] = offset;
    this.lengths[slot] = length;
    this.size += 1;
    return -1;
  }

  private grow(): void {
    const { tags, offsets, lengths } = this;
    this.tags = new Float64Array(tags.length * 2);
    this.offsets = new Float64Array(tags.length * 2);
    this.lengths = new Uint32Array(tags.length * 2);
    this.size = 0;
    for (let slot = 0; slot < tags.length; slot += 1) {
      if (tags[slot] !== 0) this.set(tags[slot]!, offsets[slot]!, lengths[slot]!);
    }
  }
}

/**
 * Where each live record of a data log is, by the 52-bit hash of its key: 20 bytes a slot
 * in typed arrays, 27 to 53 bytes an entry at a load factor between 0.375 and 0.75. It is
 * cut into 64 shards (by the hash's top bits) that double on their own, so growing never
 * holds two copies of the whole table.
 */
export class OffsetTable {
  private readonly shards = Array.from({ length: SHARDS }, () => new OffsetShard(INITIAL_SHARD_SLOTS));
  private remapped: Float64Array[] | undefined;

  get size(): number {
    return this.shards.reduce((sum, shard) => sum + shard.size, 0);
  }

  /** Bytes held by the typed arrays. */
  get bytes(): number {
    return this.shards.reduce(
      (sum, shard) => sum + shard.tags.byteLength + shard.offsets.byteLength + shard.lengths.byteLength,
      0,
    );
  }

  /** A location for {@link offsetAt} and {@link lengthAt}, or -1 when no record has this hash. */
  locate(hash: number): number {
    const shard = Math.floor(hash / SHARD_SPAN);
    const slot = this.shards[shard]!.find(hash + 1);
    return slot < 0 ? -1 : slot * SHARDS + shard;
  }

  offsetAt(location: number): number {
    return this.shards[location % SHARDS]!.offsets[Math.floor(location / SHARDS)]!;
  }

  lengthAt(location: number): number {
    return this.shards[location % SHARDS]!.lengths[Math.floor(location / SHARDS)]!;
  }

  /** Points `hash` at a record; returns the length it pointed at before, or -1 if it was new. */
  set(hash: number, offset: number, length: number): number {
    if (this.remapped) throw new Error('OffsetTable: set during a remap');
    return this.shards[Math.floor(hash / SHARD_SPAN)]!.set(hash + 1, offset, length);
  }

  /** Starts collecting new offsets for every live slot (compaction) without changing what lookups see. */
  beginRemap(): void {
    this.remapped = this.shards.map((shard) => new Float64Array(shard.offsets.length));
  }

  remap(location: number, offset: number): void {
    this.remapped![location % SHARDS]![Math.floor(location / SHARDS)] = offset;
  }

  /** Makes the collected offsets current, all at once. */
  commitRemap(): void {
    for (const [i, shard] of this.shards.entries()) shard.offsets = this.remapped![i]!;
    this.remapped = undefined;
  }

  abortRemap(): void {
    this.remapped = undefined;
  }
}

/** One pipeline's files and what this process knows of them. */
interface PipelineLog {
  readonly keysPath: string;
  readonly table: OffsetTable;
  /** The data log the key file points into: `<pipeline>.jsonl`, then `<pipeline>.<generation>.jsonl`. */
  dataPath: string;
  generation: number;
  /** Bytes in the data log: where the next record goes. */
  dataSize: number;
  /** The data log ends in a torn record (no newline): the next append starts with one. */
  dataTorn: boolean;
  keysExist: boolean;
  /** Bytes of the key file's header line: entries start there. */
  keysFrom: number;
  /** Bytes of whole lines in the key file; a torn tail past it is cut before the next append. */
  keysSize: number;
  keysTorn: boolean;
  /** Lines in the key file, superseded ones included. */
  keyLines: number;
  /** Bytes of the live records, newlines included: compaction would leave this much. */
  liveBytes: number;
  /** After a compaction failed, the data log size at which it is tried again. */
  compactAt: number;
  compactionFailure: string | undefined;
  writes: Promise<void>;
}

/** Sizes of one pipeline's index. */
export interface ChunkIndexStats {
  /** Keys with a live record. */
  readonly entries: number;
  readonly keyLines: number;
  readonly dataBytes: number;
  readonly liveBytes: number;
  /** Bytes of the in-memory offset table. */
  readonly tableBytes: number;
  /** Times the data log has been compacted. */
  readonly generation: number;
  /** Why the last compaction failed, until one succeeds. */
  readonly compactionFailure: string | undefined;
}

interface Span {
  readonly key: string;
  readonly offset: number;
  readonly length: number;
}

function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

function decodeVector(text: string): Float32Array | undefined {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0) return undefined;
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * Calls `onLine` with each whole line of `file` from byte `from`, and its offset and byte
 * length (no newline), reading blocks so memory stays flat. Returns where the last whole
 * line ends: bytes past it are a torn tail.
 */
async function scanLines(
  file: string,
  from: number,
  onLine: (text: string, offset: number, length: number) => void | Promise<void>,
): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const block = Buffer.allocUnsafe(SCAN_BLOCK_BYTES);
    let position = from;
    let carry: Buffer | undefined;
    let end = from;
    for (;;) {
      const { bytesRead } = await handle.read(block, 0, block.length, position);
      if (bytesRead === 0) return end;
      const start = carry ? position - carry.length : position;
      const bytes = carry
        ? Buffer.concat([carry, block.subarray(0, bytesRead)])
        : block.subarray(0, bytesRead);
      position += bytesRead;
      let lineStart = 0;
      for (let nl = bytes.indexOf(NEWLINE); nl !== -1; nl = bytes.indexOf(NEWLINE, lineStart)) {
        const pending = onLine(bytes.toString('utf8', lineStart, nl), start + lineStart, nl - lineStart);
        if (pending) await pending;
        lineStart = nl + 1;
      }
      end = start + lineStart;
      carry = lineStart < bytes.length ? Buffer.from(bytes.subarray(lineStart)) : undefined;
    }
  } finally {
    await handle.close();
  }
}

/** Where each id's record is, in log order; ids with no entry are left out. */
function locateAll(table: OffsetTable, ids: readonly string[], hashes: readonly number[]): Span[] {
  const spans: Span[] = [];
  ids.forEach((key, i) => {
    const location = table.locate(hashes[i]!);
    if (location >= 0)
      spans.push({ key, offset: table.offsetAt(location), length: table.lengthAt(location) });
  });
  return spans.sort((a, b) => a.offset - b.offset);
}

/** Spans in log order, grouped so that records a few KiB apart are read with one read. */
function groupNearby(spans: readonly Span[]): Span[][] {
  const groups: Span[][] = [];
  let group: Span[] | undefined;
  for (const span of spans) {
    const first = group?.[0];
    const last = group?.at(-1);
    if (
      group &&
      first &&
      last &&
      span.offset - (last.offset + last.length) <= READ_GAP_BYTES &&
      span.offset + span.length - first.offset <= READ_GROUP_MAX_BYTES
    )
      group.push(span);
    else {
      group = [span];
      groups.push(group);
    }
  }
  return groups;
}

function parseKeyLine(text: string): [key: string, offset: number, length: number] | undefined {
  try {
    const entry = JSON.parse(text) as unknown;
    if (
      Array.isArray(entry) &&
      typeof entry[0] === 'string' &&
      Number.isSafeInteger(entry[1]) &&
      entry[1] >= 0 &&
      Number.isSafeInteger(entry[2]) &&
      entry[2] >= 0
    )
      return entry as [string, number, number];
  } catch {
    // A torn or foreign line: skipped.
  }
  return undefined;
}

/** The key of a data-log record, or undefined when the line is not one. */
function keyOfRecord(text: string): string | undefined {
  try {
    const record = JSON.parse(text) as Partial<ChunkRecord & DocRecord>;
    if (typeof record.c === 'string') return `c:${record.c}`;
    if (typeof record.d === 'string') return `d:${record.d}`;
  } catch {
    // A torn record.
  }
  return undefined;
}

/**
 * The chunk index of one machine, with memory bounded by the number of entries, not
 * their vectors. Per pipeline, under `<dir>/`:
 *
 * - `<pipeline>.jsonl` (`<pipeline>.<n>.jsonl` after the n-th compaction): the data log,
 *   append-only JSON lines, one per chunk (`{c, h, v, r}`, vector in base64) or document
 *   (`{d, n}`); later lines supersede earlier ones for the same key.
 * - `<pipeline>.keys`: a header naming the data log, then `[key, offset, length]` per
 *   record, appended after the record itself. Loading reads only this file.
 *
 * In memory there is an {@link OffsetTable} of key hashes; a lookup reads the records
 * with positional reads and checks the key each holds, so a hash collision is a miss.
 * A crash mid-append leaves a torn last line, ignored on load; a log with no key file
 * (written before key files existed) is scanned once to build one. When superseded
 * records outweigh live ones the log is rewritten into a new generation, committed by
 * renaming the key file. One process writes a directory at a time.
 */
export class LocalChunkIndex implements ChunkIndex {
  private readonly logs = new Map<string, Promise<PipelineLog>>();
  private readonly options: Required<LocalChunkIndexOptions>;

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
      if (Number.isSafeInteger(record.n)) found.set(id, { docId: id, chunkCount: record.n! });
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
    const entryOf = (i: number): { key: string; line: string } => {
      const chunk = chunks[i];
      if (chunk)
        return {
          key: `c:${chunk.chunkId}`,
          line: JSON.stringify({
            c: chunk.chunkId,
            h: chunk.textSha256,
            v: encodeVector(chunk.embedding),
            r: chunk.runId,
          } satisfies ChunkRecord),
        };
      const doc = docs[i - chunks.length]!;
      return {
        key: `d:${doc.docId}`,
        line: JSON.stringify({ d: doc.docId, n: doc.chunkCount } satisfies DocRecord),
      };
    };
    await this.serialise(log, async () => {
      for (let i = 0; i < total; i += APPEND_SLICE) {
        const slice = Array.from({ length: Math.min(APPEND_SLICE, total - i) }, (_, j) => entryOf(i + j));
        await this.append(log, slice);
      }
      const dead = log.dataSize - log.liveBytes;
      if (dead <= log.liveBytes || dead < this.options.compactMinBytes || log.dataSize < log.compactAt)
        return;
      try {
        await this.compact(pipeline, log);
        log.compactionFailure = undefined;
      } catch (error) {
        // The records are written and the old log is intact: the index works, only larger.
        // Trying again on every write would copy the log each time, so wait for it to grow by half.
        log.compactionFailure = describeError(error);
        log.compactAt = log.dataSize * 1.5;
      }
    });
  }

  /** Sizes of a pipeline's index (loading it if needed). */
  async stats(pipeline: string): Promise<ChunkIndexStats> {
    const log = await this.open(pipeline);
    return {
      entries: log.table.size,
      keyLines: log.keyLines,
      dataBytes: log.dataSize,
      liveBytes: log.liveBytes,
      tableBytes: log.table.bytes,
      generation: log.generation,
      compactionFailure: log.compactionFailure,
    };
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
   * that id: a record another key's hash led to is a miss. Reads are positional, and
   * records near each other in the log are read together.
   */
  private async read(
    pipeline: string,
    kind: 'c' | 'd',
    ids: readonly string[],
  ): Promise<Map<string, Partial<ChunkRecord & DocRecord>>> {
    const log = await this.open(pipeline);
    const unique = [...new Set(ids)];
    const hashes = unique.map((id) => this.hashOf(`${kind}:${id}`));
    const found = new Map<string, Partial<ChunkRecord & DocRecord>>();
    if (!hashes.some((h) => log.table.locate(h) >= 0)) return found;
    for (;;) {
      // Offsets are taken from the table in the same turn as the data log is seen to be
      // current: compaction swaps both at once, and an old log stays readable while open.
      const dataPath = log.dataPath;
      let handle: FileHandle;
      try {
        handle = await open(dataPath, 'r');
      } catch (error) {
        if (!isMissing(error)) throw error;
        if (log.dataPath !== dataPath) continue;
        return found;
      }
      if (log.dataPath !== dataPath) {
        await handle.close();
        continue;
      }
      try {
        await Promise.all(
          groupNearby(locateAll(log.table, unique, hashes)).map(async (group) => {
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

  private async load(pipeline: string): Promise<PipelineLog> {
    const log: PipelineLog = {
      keysPath: path.join(this.dir, `${pipeline}.keys`),
      table: new OffsetTable(),
      dataPath: path.join(this.dir, `${pipeline}.jsonl`),
      generation: 0,
      dataSize: 0,
      dataTorn: false,
      keysExist: false,
      keysFrom: 0,
      keysSize: 0,
      keysTorn: false,
      keyLines: 0,
      liveBytes: 0,
      compactAt: 0,
      compactionFailure: undefined,
      writes: Promise.resolve(),
    };
    const header = await this.readHeader(pipeline, log.keysPath);
    if (header) {
      log.dataPath = path.join(this.dir, header.header.data);
      log.generation = header.header.generation;
      log.keysFrom = header.bytes;
      if ((await sizeOf(log.dataPath)) !== undefined) {
        log.keysExist = true;
        log.keysSize = await scanLines(log.keysPath, header.bytes, (text) => {
          const entry = parseKeyLine(text);
          if (entry) this.place(log, entry[0], entry[1], entry[2]);
        });
        log.keysTorn = log.keysSize < ((await sizeOf(log.keysPath)) ?? 0);
      }
      // A key file whose data log is gone is rewritten on the next record.
    } else {
      const newest = await this.newestDataLog(pipeline);
      if (newest) await this.buildKeyFile(log, newest.file, newest.generation);
    }
    await this.measureDataLog(log);
    await this.removeStaleFiles(pipeline, log);
    return log;
  }

  private async readHeader(
    pipeline: string,
    keysPath: string,
  ): Promise<{ header: KeyFileHeader; bytes: number } | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(keysPath, 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      const bytes = Buffer.alloc(4096);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
      const nl = bytes.subarray(0, bytesRead).indexOf(NEWLINE);
      let header: Partial<KeyFileHeader> = {};
      try {
        if (nl > 0) header = JSON.parse(bytes.toString('utf8', 0, nl)) as Partial<KeyFileHeader>;
      } catch {
        // Reported below.
      }
      const match = typeof header.data === 'string' ? this.dataLogPattern(pipeline).exec(header.data) : null;
      if (header.format !== KEY_FILE_FORMAT || !match || !Number.isSafeInteger(header.generation))
        throw new ChunkIndexFileError(
          `${keysPath} is not a ${KEY_FILE_FORMAT} key file; remove it and the index is rebuilt from the data log`,
        );
      return { header: header as KeyFileHeader, bytes: nl + 1 };
    } finally {
      await handle.close();
    }
  }

  private async newestDataLog(pipeline: string): Promise<{ file: string; generation: number } | undefined> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const pattern = this.dataLogPattern(pipeline);
    let newest: { file: string; generation: number } | undefined;
    for (const name of names) {
      const match = pattern.exec(name);
      if (!match) continue;
      const generation = Number(match[1] ?? 0);
      if (!newest || generation > newest.generation) newest = { file: path.join(this.dir, name), generation };
    }
    return newest;
  }

  /** Scans a data log with no key file (one written before key files existed), parsing every record once. */
  private async buildKeyFile(log: PipelineLog, dataPath: string, generation: number): Promise<void> {
    log.dataPath = dataPath;
    log.generation = generation;
    const tmp = `${log.keysPath}.tmp`;
    const out = await open(tmp, 'w');
    try {
      const header = this.headerLine(dataPath, generation);
      log.keysFrom = Buffer.byteLength(header);
      let keysSize = Buffer.byteLength(header);
      let pending = [header];
      const flush = async (): Promise<void> => {
        await out.write(pending.join(''));
        pending = [];
      };
      await scanLines(dataPath, 0, (text, offset, length) => {
        const key = keyOfRecord(text);
        if (key === undefined) return;
        this.place(log, key, offset, length);
        const line = `${JSON.stringify([key, offset, length])}\n`;
        keysSize += Buffer.byteLength(line);
        pending.push(line);
        if (pending.length >= APPEND_SLICE) return flush();
      });
      await flush();
      await out.sync();
      log.keysSize = keysSize;
    } finally {
      await out.close();
    }
    await rename(tmp, log.keysPath);
    log.keysExist = true;
  }

  private headerLine(dataPath: string, generation: number): string {
    const header: KeyFileHeader = { format: KEY_FILE_FORMAT, data: path.basename(dataPath), generation };
    return `${JSON.stringify(header)}\n`;
  }

  private async measureDataLog(log: PipelineLog): Promise<void> {
    const size = await sizeOf(log.dataPath);
    log.dataSize = size ?? 0;
    if (!size) return;
    const handle = await open(log.dataPath, 'r');
    try {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      log.dataTorn = last[0] !== NEWLINE;
    } finally {
      await handle.close();
    }
  }

  /** Removes data logs of other generations and temporary files a crash left behind. */
  private async removeStaleFiles(pipeline: string, log: PipelineLog): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    const pattern = this.dataLogPattern(pipeline);
    for (const name of names) {
      const file = path.join(this.dir, name);
      const stale = name === `${pipeline}.keys.tmp` || (pattern.test(name) && file !== log.dataPath);
      if (stale && log.keysExist) await unlink(file).catch(() => undefined);
    }
  }

  /** Points a key at its record in memory, keeping the live size. */
  private place(log: PipelineLog, key: string, offset: number, length: number): void {
    const previous = log.table.set(this.hashOf(key), offset, length);
    log.liveBytes += length + 1 - (previous < 0 ? 0 : previous + 1);
    log.keyLines += 1;
  }

  /** Appends records, then their key lines; only then can a lookup find them. */
  private async append(log: PipelineLog, entries: readonly { key: string; line: string }[]): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const lead = log.dataTorn ? '\n' : '';
    let offset = log.dataSize + lead.length;
    const placed: Span[] = [];
    const data: string[] = [lead];
    const keys: string[] = [];
    for (const { key, line } of entries) {
      const length = Buffer.byteLength(line);
      placed.push({ key, offset, length });
      data.push(line, '\n');
      keys.push(JSON.stringify([key, offset, length]), '\n');
      offset += length + 1;
    }
    try {
      await appendFile(log.dataPath, data.join(''));
    } catch (error) {
      log.dataTorn = true;
      log.dataSize = (await sizeOf(log.dataPath).catch(() => undefined)) ?? log.dataSize;
      throw error;
    }
    log.dataSize = offset;
    log.dataTorn = false;
    await this.appendKeys(log, keys.join(''));
    for (const span of placed) this.place(log, span.key, span.offset, span.length);
  }

  private async appendKeys(log: PipelineLog, lines: string): Promise<void> {
    if (!log.keysExist) {
      // Created whole by a rename, so the header is never torn.
      const header = this.headerLine(log.dataPath, log.generation);
      await writeFile(`${log.keysPath}.tmp`, header);
      await rename(`${log.keysPath}.tmp`, log.keysPath);
      log.keysExist = true;
      log.keysFrom = Buffer.byteLength(header);
      log.keysSize = log.keysFrom;
      log.keysTorn = false;
    }
    if (log.keysTorn) {
      await truncate(log.keysPath, log.keysSize);
      log.keysTorn = false;
    }
    try {
      await appendFile(log.keysPath, lines);
    } catch (error) {
      log.keysTorn = true;
      throw error;
    }
    log.keysSize += Buffer.byteLength(lines);
  }

  /**
   * Copies the live records into the next generation's data log, with a new key file,
   * and commits by renaming the key file over the old one. Lookups keep reading the old
   * log until then; a crash before the rename leaves the old files as they were.
   */
  private async compact(pipeline: string, log: PipelineLog): Promise<void> {
    const generation = log.generation + 1;
    const dataPath = path.join(this.dir, `${pipeline}.${generation}.jsonl`);
    const keysTmp = `${log.keysPath}.tmp`;
    const opened: FileHandle[] = [];
    const openTracked = async (file: string, flags: string): Promise<FileHandle> => {
      const handle = await open(file, flags);
      opened.push(handle);
      return handle;
    };
    const closeAll = () => Promise.all(opened.map((handle) => handle.close()));
    let dataSize = 0;
    let keysSize = 0;
    let keyLines = 0;
    log.table.beginRemap();
    try {
      const source = await openTracked(log.dataPath, 'r');
      const files = { data: await openTracked(dataPath, 'w'), keys: await openTracked(keysTmp, 'w') };
      const header = this.headerLine(dataPath, generation);
      await files.keys.write(header);
      keysSize += Buffer.byteLength(header);
      // Live records in log order, copied a window of the old log at a time.
      let batch: { location: number; key: string; offset: number; length: number }[] = [];
      const copy = async (): Promise<void> => {
        const first = batch[0];
        const last = batch.at(-1);
        if (!first || !last) return;
        const bytes = Buffer.allocUnsafe(last.offset + last.length - first.offset);
        const { bytesRead } = await source.read(bytes, 0, bytes.length, first.offset);
        const records: Buffer[] = [];
        const lines: string[] = [];
        for (const entry of batch) {
          const from = entry.offset - first.offset;
          // A record the log lost is not copied; its slot is left at offset 0, where the key check misses.
          if (from + entry.length > bytesRead) continue;
          records.push(bytes.subarray(from, from + entry.length), NEWLINE_BYTES);
          lines.push(JSON.stringify([entry.key, dataSize, entry.length]), '\n');
          log.table.remap(entry.location, dataSize);
          dataSize += entry.length + 1;
          keyLines += 1;
        }
        await files.data.write(Buffer.concat(records));
        const text = lines.join('');
        await files.keys.write(text);
        keysSize += Buffer.byteLength(text);
        batch = [];
      };
      await scanLines(log.keysPath, log.keysFrom, (text) => {
        const entry = parseKeyLine(text);
        if (!entry) return;
        const [key, offset, length] = entry;
        const location = log.table.locate(this.hashOf(key));
        // Only the line the table points at is live: superseded lines, and keys a collision hid, are dropped.
        if (location < 0 || log.table.offsetAt(location) !== offset) return;
        const first = batch[0];
        const full = first !== undefined && offset + length - first.offset > COPY_WINDOW_BYTES;
        const copied = full ? copy() : undefined;
        const add = () => {
          batch.push({ location, key, offset, length });
        };
        if (!copied) return add();
        return copied.then(add);
      });
      await copy();
      await files.data.sync();
      await files.keys.sync();
      await closeAll();
      await rename(keysTmp, log.keysPath);
    } catch (error) {
      log.table.abortRemap();
      await closeAll().catch(() => undefined);
      await Promise.all([unlink(dataPath), unlink(keysTmp)].map((done) => done.catch(() => undefined)));
      throw error;
    }
    const old = log.dataPath;
    // Committed on disk; now in memory, in one turn, so a lookup sees the old log or the new, never a mix.
    log.table.commitRemap();
    log.dataPath = dataPath;
    log.generation = generation;
    log.dataSize = dataSize;
    log.dataTorn = false;
    log.keysFrom = Buffer.byteLength(this.headerLine(dataPath, generation));
    log.keysSize = keysSize;
    log.keysTorn = false;
    log.keyLines = keyLines;
    log.liveBytes = dataSize;
    await unlink(old).catch(() => undefined);
  }
}
