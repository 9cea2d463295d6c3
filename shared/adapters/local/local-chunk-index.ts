import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { ConfigError } from '../../errors/errors.ts';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import {
  ChunkIndexFileError,
  decodeOldVector,
  findOldFiles,
  type OldPipelineFiles,
  readOldDataLog,
  removeOldFiles,
} from './chunk-index/old-files.ts';

export { ChunkIndexFileError } from './chunk-index/old-files.ts';

export interface LocalChunkIndexOptions {
  /**
   * Bytes of LevelDB's block cache (uncompressed blocks kept in memory for lookups).
   * @default 1 MiB
   */
  readonly cacheBytes?: number;
}

const DEFAULT_OPTIONS: Required<LocalChunkIndexOptions> = {
  // Not LevelDB's 8 MiB: a run looks each chunk id up once, in window order, so a block is
  // seldom read twice while cached. Looking all 250,000 chunks of an index up again took 3.1 s
  // with 1 MiB against 3.3 s with 8 MiB, and a first run filled the 8 MiB with the data blocks
  // its Bloom filters' false positives read (heaptrack; docs/decisions.md).
  cacheBytes: 1024 * 1024,
};

/** The LevelDB database, under the index folder (old-format files sit beside it until imported). */
const DB_FOLDER = 'db';
/** Version byte in front of every value, so a later layout can tell old values apart. */
const VALUE_FORMAT = 1;
/**
 * LevelDB's memtable size (its default is 4 MiB). A full memtable becomes a level-0 table, and
 * four of those are compacted with all of level 1, read through memory-mapped files that stay
 * resident until the compaction ends, so smaller memtables mean smaller compactions there.
 * `sluice run` on 1,000,000 one-line records at 384 floats with this and the two changes below
 * peaked at 268.6 MiB against 307.8 before (mapped tables 40 against 59 MiB at the peak) and
 * used 182 against 217 s of CPU; one run each on a loaded machine (docs/decisions.md).
 */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Old records imported per write batch. */
const IMPORT_BATCH = 4096;

type Db = ClassicLevel<string, Buffer>;
type Put = { type: 'put'; key: string; value: Buffer };

/** The key of a chunk or document: pipeline names hold no `/`, so pipelines never share a key. */
const chunkKey = (pipeline: string, chunkId: string) => `${pipeline}/c/${chunkId}`;
const docKey = (pipeline: string, docId: string) => `${pipeline}/d/${docId}`;

/** Bytes of a chunk's value: `[format][sha length u16][sha][run id length u16][run id][float32 LE ...]`. */
const chunkValueBytes = (chunk: IndexedChunk) =>
  5 +
  Buffer.byteLength(chunk.textSha256, 'utf8') +
  Buffer.byteLength(chunk.runId, 'utf8') +
  chunk.embedding.byteLength;

/** Writes a chunk's value at the start of `out` (at least {@link chunkValueBytes} long); returns its length. */
function encodeChunkInto(out: Buffer, chunk: IndexedChunk): number {
  let at = out.writeUInt8(VALUE_FORMAT, 0);
  const shaLength = out.write(chunk.textSha256, at + 2, 'utf8');
  at = out.writeUInt16LE(shaLength, at) + shaLength;
  const runIdLength = out.write(chunk.runId, at + 2, 'utf8');
  at = out.writeUInt16LE(runIdLength, at) + runIdLength;
  const vector = chunk.embedding;
  out.set(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength), at);
  return at + vector.byteLength;
}

function encodeChunk(chunk: IndexedChunk): Buffer {
  const out = Buffer.allocUnsafe(chunkValueBytes(chunk));
  encodeChunkInto(out, chunk);
  return out;
}

/** The chunk a value holds, or undefined when it is not one this version wrote (a miss). */
function decodeChunk(chunkId: string, value: Buffer): IndexedChunk | undefined {
  if (value.length < 5 || value[0] !== VALUE_FORMAT) return undefined;
  const shaLength = value.readUInt16LE(1);
  const runIdAt = 3 + shaLength + 2;
  if (runIdAt > value.length) return undefined;
  const runIdLength = value.readUInt16LE(runIdAt - 2);
  const vectorAt = runIdAt + runIdLength;
  if (vectorAt > value.length || (value.length - vectorAt) % 4 !== 0) return undefined;
  // Copied out: the vector's bytes need 4-byte alignment and must not alias LevelDB's buffer.
  const vector = new Float32Array((value.length - vectorAt) / 4);
  new Uint8Array(vector.buffer).set(value.subarray(vectorAt));
  return {
    chunkId,
    textSha256: value.toString('utf8', 3, 3 + shaLength),
    embedding: vector,
    runId: value.toString('utf8', runIdAt, vectorAt),
  };
}

/** `[format]` then JSON `{n, s?}`. */
function encodeDoc(doc: IndexedDoc): Buffer {
  const json = JSON.stringify({
    n: doc.chunkCount,
    ...(doc.sourceKey === undefined ? {} : { s: doc.sourceKey }),
  });
  return Buffer.concat([Buffer.of(VALUE_FORMAT), Buffer.from(json, 'utf8')]);
}

function decodeDoc(docId: string, value: Buffer): IndexedDoc | undefined {
  if (value.length < 1 || value[0] !== VALUE_FORMAT) return undefined;
  let record: { n?: unknown; s?: unknown };
  try {
    record = JSON.parse(value.toString('utf8', 1)) as typeof record;
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(record.n)) return undefined;
  return {
    docId,
    chunkCount: record.n as number,
    ...(typeof record.s === 'string' ? { sourceKey: record.s } : {}),
  };
}

/** One open database, shared by every instance of this process on the same folder. */
interface OpenDb {
  readonly ready: Promise<Db>;
  users: number;
}

/**
 * LevelDB lets one opener at a time hold a folder (it locks it, within a process too), so
 * the instances of one process on one folder share one database, opened by the first and
 * closed by the last to close. Worker threads do not open it: they reach the main
 * thread's index over the thread RPC.
 */
const openDbs = new Map<string, OpenDb>();

function validPipeline(pipeline: string): void {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(pipeline)) throw new Error(`invalid pipeline name "${pipeline}"`);
}

/**
 * The chunk index of one machine, in a LevelDB database (`classic-level`) under
 * `<dir>/db/`: one key per chunk (`<pipeline>/c/<chunkId>`, value: fingerprint, run id and
 * the vector's float32 bytes) and per document (`<pipeline>/d/<docId>`, value: chunk
 * count and source). Lookups are `getMany` point reads; a `record()` is one write batch,
 * atomic: after a crash either all its entries are there or none. Writes go to LevelDB's
 * log before they resolve (not fsynced), so a process crash loses nothing written; a
 * power loss may lose the last batches, whose chunks are then misses and embedded again.
 * Memory is LevelDB's write buffer and block cache, whatever the number of entries.
 *
 * Files of the index before it moved onto LevelDB (a JSON-lines data log per pipeline
 * and its key index) are imported on first open, then removed.
 */
export class LocalChunkIndex implements ChunkIndex {
  private readonly options: Required<LocalChunkIndexOptions>;
  private readonly location: string;
  private db: Promise<Db> | undefined;
  /** Where {@link record} encodes chunk values for LevelDB to copy; undefined while one is in use. */
  private scratch: Buffer | undefined;

  constructor(
    readonly dir: string,
    options: LocalChunkIndexOptions = {},
  ) {
    const unknown = Object.keys(options).filter((key) => !(key in DEFAULT_OPTIONS));
    if (unknown.length > 0) throw new ConfigError(`LocalChunkIndex: unknown option(s) ${unknown.join(', ')}`);
    this.options = { ...DEFAULT_OPTIONS, ...options };
    if (!Number.isSafeInteger(this.options.cacheBytes) || this.options.cacheBytes < 0)
      throw new ConfigError('LocalChunkIndex: cacheBytes must be a whole number of bytes, 0 or more');
    this.location = path.resolve(dir, DB_FOLDER);
  }

  async lookupChunks(pipeline: string, chunkIds: readonly string[]): Promise<Map<string, IndexedChunk>> {
    validPipeline(pipeline);
    const found = new Map<string, IndexedChunk>();
    const ids = [...new Set(chunkIds)];
    if (ids.length === 0) return found;
    const values = await (await this.open()).getMany(ids.map((id) => chunkKey(pipeline, id)));
    ids.forEach((id, i) => {
      const value = values[i];
      const chunk = value && decodeChunk(id, value);
      if (chunk) found.set(id, chunk);
    });
    return found;
  }

  async lookupDocs(pipeline: string, docIds: readonly string[]): Promise<Map<string, IndexedDoc>> {
    validPipeline(pipeline);
    const found = new Map<string, IndexedDoc>();
    const ids = [...new Set(docIds)];
    if (ids.length === 0) return found;
    const values = await (await this.open()).getMany(ids.map((id) => docKey(pipeline, id)));
    ids.forEach((id, i) => {
      const value = values[i];
      const doc = value && decodeDoc(id, value);
      if (doc) found.set(id, doc);
    });
    return found;
  }

  async record(
    pipeline: string,
    chunks: readonly IndexedChunk[],
    docs: readonly IndexedDoc[],
  ): Promise<void> {
    validPipeline(pipeline);
    const db = await this.open();
    if (chunks.length + docs.length === 0) return;
    // One batch: applied whole or not at all, in order (a repeated key keeps its last entry).
    // The chunk values are views of one buffer, reused by the next record(): classic-level
    // copies every entry into LevelDB's write batch before its promise settles. A Buffer per
    // chunk (1.5 KiB at 384 floats, 2,048 per record() from a unit) left about 400 pool slabs
    // per record() in the main thread's malloc heap until V8 collected them (8 MiB live at the
    // peak of a 100,000-record run, heaptrack; docs/decisions.md).
    const scratch = this.takeScratch(chunks.reduce((sum, chunk) => sum + chunkValueBytes(chunk), 0));
    try {
      const puts: Put[] = [];
      let at = 0;
      for (const chunk of chunks) {
        const end = at + encodeChunkInto(scratch.subarray(at), chunk);
        puts.push({ type: 'put', key: chunkKey(pipeline, chunk.chunkId), value: scratch.subarray(at, end) });
        at = end;
      }
      for (const doc of docs)
        puts.push({ type: 'put', key: docKey(pipeline, doc.docId), value: encodeDoc(doc) });
      await db.batch(puts);
    } finally {
      this.scratch = scratch;
    }
  }

  /**
   * The buffer to encode a record()'s chunk values into: the kept one when it is free and
   * large enough, else a new one (kept in its place after use). A record() running at the
   * same time as another (two units) gets its own.
   */
  private takeScratch(bytes: number): Buffer {
    const kept = this.scratch;
    this.scratch = undefined;
    if (kept && kept.length >= bytes) return kept;
    return Buffer.allocUnsafeSlow(Math.max(bytes, kept?.length ?? 0));
  }

  /**
   * Lets go of the database, closed once every instance of this process on it has let go;
   * a later call opens it again (reading it from disk).
   */
  async close(): Promise<void> {
    const mine = this.db;
    this.scratch = undefined;
    if (!mine) return;
    this.db = undefined;
    const shared = openDbs.get(this.location);
    // A failed open already let go of its share.
    if (!shared || !(await mine.then(() => true).catch(() => false))) return;
    shared.users -= 1;
    if (shared.users > 0) return;
    openDbs.delete(this.location);
    await (await shared.ready).close();
  }

  /** Opens (or joins) the database, importing old-format files on the first open in this process. */
  private open(): Promise<Db> {
    if (this.db) return this.db;
    let shared = openDbs.get(this.location);
    if (!shared) {
      const opened: OpenDb = { ready: this.openDb(), users: 0 };
      shared = opened;
      openDbs.set(this.location, opened);
      // A failed open (the folder held by another process, say) is tried again on the next call.
      opened.ready.catch(() => {
        if (openDbs.get(this.location) === opened) openDbs.delete(this.location);
      });
    }
    shared.users += 1;
    const joined = shared;
    this.db = shared.ready.catch((error: unknown) => {
      joined.users -= 1;
      this.db = undefined;
      throw error;
    });
    return this.db;
  }

  private async openDb(): Promise<Db> {
    const db: Db = new ClassicLevel<string, Buffer>(this.location, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
      cacheSize: this.options.cacheBytes,
      writeBufferSize: WRITE_BUFFER_BYTES,
    });
    try {
      await db.open();
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause;
      if (/lock/i.test(cause?.message ?? ''))
        throw new ChunkIndexFileError(
          `the chunk index ${this.dir} is in use by another process (LevelDB lets one process open it at a time); wait for it to finish`,
          { cause: error },
        );
      throw error;
    }
    try {
      for (const old of await findOldFiles(path.resolve(this.dir))) await importOld(db, old);
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
    return db;
  }
}

/**
 * Imports one pipeline's old data log (records in log order, so later ones supersede
 * earlier ones), syncs it, then removes the old files, the data log last: a crash before
 * that leaves it to be imported again on the next open, over the same keys.
 */
async function importOld(db: Db, old: OldPipelineFiles): Promise<void> {
  const { pipeline, dataLog } = old;
  if (dataLog) {
    let puts: Put[] = [];
    const flush = async (): Promise<void> => {
      if (puts.length === 0) return;
      const batch = puts;
      puts = [];
      await db.batch(batch);
    };
    await readOldDataLog(dataLog, (record) => {
      if (typeof record.c === 'string') {
        if (typeof record.h !== 'string' || typeof record.r !== 'string' || typeof record.v !== 'string')
          return;
        const embedding = decodeOldVector(record.v);
        if (!embedding) return;
        const chunk = { chunkId: record.c, textSha256: record.h, runId: record.r, embedding };
        puts.push({ type: 'put', key: chunkKey(pipeline, record.c), value: encodeChunk(chunk) });
      } else if (typeof record.d === 'string') {
        if (!Number.isSafeInteger(record.n)) return;
        const doc = {
          docId: record.d,
          chunkCount: record.n!,
          ...(typeof record.s === 'string' ? { sourceKey: record.s } : {}),
        };
        puts.push({ type: 'put', key: docKey(pipeline, record.d), value: encodeDoc(doc) });
      } else return;
      if (puts.length >= IMPORT_BATCH) return flush();
    });
    await flush();
    // Durable before the old files go: a synced write syncs LevelDB's log, and every batch before it.
    await db.del(`${pipeline}/`, { sync: true });
  }
  await removeOldFiles(old.files);
}
