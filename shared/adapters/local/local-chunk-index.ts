import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { ConfigError } from '../../errors/errors.ts';
import {
  type ChunkIndex,
  INDEX_FINGERPRINT_BYTES,
  type IndexedDoc,
  MAX_INDEXED_CHUNKS,
} from '../../ports/chunk-index.ts';
import {
  ChunkIndexFileError,
  findOldFiles,
  type OldPipelineFiles,
  readOldDocs,
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
  // Not LevelDB's 8 MiB: a run looks each document id up once, in window order, so a block is
  // seldom read twice while cached. When the index kept an entry per chunk, looking all
  // 250,000 chunks of an index up again took 3.1 s with 1 MiB against 3.3 s with 8 MiB, and a
  // first run filled the 8 MiB with the data blocks its Bloom filters' false positives read
  // (heaptrack; docs/decisions.md).
  cacheBytes: 1024 * 1024,
};

/** The LevelDB database, under the index folder (old-format files sit beside it until imported). */
const DB_FOLDER = 'db';
/**
 * Version byte in front of every value. 1: JSON `{n, s?}` (chunk count and source), read
 * as a document without `chunks`, so its chunks are embedded again once. 2: the binary
 * layout of {@link encodeDocInto}.
 */
const JSON_FORMAT = 1;
const VALUE_FORMAT = 2;
/** Flags byte of a format 2 value. */
const HAS_SOURCE = 1;
const HAS_CHUNKS = 2;
/** Longest run id, unit id or source key a value holds (a u16 length; S3 keys stop at 1,024 bytes). */
const MAX_TEXT_BYTES = 0xffff;
/** A chunk count or first row is a u32. */
const MAX_U32 = 0xffff_ffff;
/**
 * LevelDB's memtable size (its default is 4 MiB). A full memtable becomes a level-0 table, and
 * four of those are compacted with all of level 1, read through memory-mapped files that stay
 * resident until the compaction ends, so smaller memtables mean smaller compactions there.
 * When the index kept every chunk's vector, `sluice run` on 1,000,000 one-line records at 384
 * floats with this and the two changes below peaked at 268.6 MiB against 307.8 before (mapped
 * tables 40 against 59 MiB at the peak) and used 182 against 217 s of CPU; one run each on a
 * loaded machine (docs/decisions.md). Entries are a document's fingerprints now (16 B a
 * chunk), so the memtable fills far less often; the bound on a compaction's size still holds.
 */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Old records imported per write batch. */
const IMPORT_BATCH = 4096;

type Db = ClassicLevel<string, Buffer>;
type Put = { type: 'put'; key: string; value: Buffer };

/** The key of a document: pipeline names hold no `/`, so pipelines never share a key. */
const docKey = (pipeline: string, docId: string) => `${pipeline}/d/${docId}`;
/**
 * The range of a pipeline's per-chunk entries (`<pipeline>/c/<chunkId>`, fingerprint, run
 * id and vector) of the index before it kept fingerprints per document: `0` follows `/`.
 */
const oldChunkRange = (pipeline: string) => ({ gte: `${pipeline}/c/`, lt: `${pipeline}/c0` });

/**
 * Refuses, in one line, a document whose entry this layout cannot hold or the port does
 * not allow: checked for the whole record() before anything is written.
 */
function checkDoc(doc: IndexedDoc): void {
  const name = JSON.stringify(doc.docId);
  if (!Number.isSafeInteger(doc.chunkCount) || doc.chunkCount < 0 || doc.chunkCount > MAX_U32)
    throw new Error(
      `chunk index: document ${name} has chunk count ${doc.chunkCount}, not a whole number of 0 to ${MAX_U32}`,
    );
  const texts = { sourceKey: doc.sourceKey, runId: doc.chunks?.at.runId, unitId: doc.chunks?.at.unitId };
  for (const [field, text] of Object.entries(texts))
    if (text !== undefined && Buffer.byteLength(text, 'utf8') > MAX_TEXT_BYTES)
      throw new Error(`chunk index: document ${name} has a ${field} of over ${MAX_TEXT_BYTES} bytes`);
  if (doc.chunks === undefined) return;
  const { fingerprints, at } = doc.chunks;
  if (fingerprints.length !== doc.chunkCount * INDEX_FINGERPRINT_BYTES || doc.chunkCount > MAX_INDEXED_CHUNKS)
    throw new Error(
      `chunk index: document ${name} has ${fingerprints.length} fingerprint bytes for ${doc.chunkCount} chunks (${INDEX_FINGERPRINT_BYTES} a chunk, at most ${MAX_INDEXED_CHUNKS} chunks)`,
    );
  if (!Number.isSafeInteger(at.firstRow) || at.firstRow < 0 || at.firstRow > MAX_U32)
    throw new Error(
      `chunk index: document ${name} has first row ${at.firstRow}, not a whole number of 0 to ${MAX_U32}`,
    );
}

/** Bytes of a document's value (format 2), once {@link checkDoc} has passed it. */
function docValueBytes(doc: IndexedDoc): number {
  let bytes = 6;
  if (doc.sourceKey !== undefined) bytes += 2 + Buffer.byteLength(doc.sourceKey, 'utf8');
  const chunks = doc.chunks;
  if (chunks !== undefined)
    bytes +=
      8 +
      Buffer.byteLength(chunks.at.runId, 'utf8') +
      Buffer.byteLength(chunks.at.unitId, 'utf8') +
      chunks.fingerprints.length;
  return bytes;
}

/** Writes `text` after its u16 length at `at`; returns where the next field starts. */
function writeText(out: Buffer, text: string, at: number): number {
  const length = out.write(text, at + 2, 'utf8');
  return out.writeUInt16LE(length, at) + length;
}

/**
 * Writes a document's value at the start of `out` (at least {@link docValueBytes} long);
 * returns its length. Format 2: `[2][flags][chunkCount u32]`, then `[u16 length][source
 * key]` when it has one, then when it has `chunks` `[u16][run id][u16][unit id][first row
 * u32]` and the fingerprints, to the end of the value. Integers little-endian.
 */
function encodeDocInto(out: Buffer, doc: IndexedDoc): number {
  const flags = (doc.sourceKey === undefined ? 0 : HAS_SOURCE) | (doc.chunks === undefined ? 0 : HAS_CHUNKS);
  let at = out.writeUInt8(VALUE_FORMAT, 0);
  at = out.writeUInt8(flags, at);
  at = out.writeUInt32LE(doc.chunkCount, at);
  if (doc.sourceKey !== undefined) at = writeText(out, doc.sourceKey, at);
  const chunks = doc.chunks;
  if (chunks === undefined) return at;
  at = writeText(out, chunks.at.runId, at);
  at = writeText(out, chunks.at.unitId, at);
  at = out.writeUInt32LE(chunks.at.firstRow, at);
  out.set(chunks.fingerprints, at);
  return at + chunks.fingerprints.length;
}

function encodeDoc(doc: IndexedDoc): Buffer {
  const out = Buffer.allocUnsafe(docValueBytes(doc));
  encodeDocInto(out, doc);
  return out;
}

/** The document a value holds, or undefined when it is not one this version reads (a miss). */
function decodeDoc(docId: string, value: Buffer): IndexedDoc | undefined {
  if (value.length < 1) return undefined;
  if (value[0] === JSON_FORMAT) return decodeJsonDoc(docId, value);
  if (value[0] !== VALUE_FORMAT || value.length < 6) return undefined;
  const flags = value[1]!;
  const chunkCount = value.readUInt32LE(2);
  let at = 6;
  /** The u16-length text at `at`, moving past it; undefined when it runs past the value. */
  const readText = (): string | undefined => {
    if (at + 2 > value.length) return undefined;
    const end = at + 2 + value.readUInt16LE(at);
    if (end > value.length) return undefined;
    const text = value.toString('utf8', at + 2, end);
    at = end;
    return text;
  };
  let sourceKey: string | undefined;
  if (flags & HAS_SOURCE) {
    sourceKey = readText();
    if (sourceKey === undefined) return undefined;
  }
  const doc: IndexedDoc = { docId, chunkCount, ...(sourceKey === undefined ? {} : { sourceKey }) };
  if (!(flags & HAS_CHUNKS)) return at === value.length ? doc : undefined;
  const runId = readText();
  const unitId = readText();
  if (runId === undefined || unitId === undefined || at + 4 > value.length) return undefined;
  const firstRow = value.readUInt32LE(at);
  at += 4;
  if (value.length - at !== chunkCount * INDEX_FINGERPRINT_BYTES) return undefined;
  // Copied out: a view would keep LevelDB's whole value alive, and the thread RPC's structured
  // clone copies a view's entire buffer.
  const fingerprints = new Uint8Array(value.subarray(at));
  return { ...doc, chunks: { fingerprints, at: { runId, unitId, firstRow } } };
}

/** A format 1 value: `[1]` then JSON `{n, s?}`. */
function decodeJsonDoc(docId: string, value: Buffer): IndexedDoc | undefined {
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
 * `<dir>/db/`: one key per document (`<pipeline>/d/<docId>`, value: chunk count, source,
 * and the run, unit and first row of its vectors with its chunks' 16-byte fingerprints;
 * {@link encodeDocInto}). Lookups are `getMany` point reads; a `record()` is one write
 * batch, atomic: after a crash either all its entries are there or none. Writes go to
 * LevelDB's log before they resolve (not fsynced), so a process crash loses nothing
 * written; a power loss may lose the last batches, whose documents are then misses and
 * embedded again. Memory is LevelDB's write buffer and block cache, whatever the number of
 * entries.
 *
 * Files of the index before it moved onto LevelDB (a JSON-lines data log per pipeline and
 * its key index) have their documents imported on first open, then are removed; the
 * per-chunk entries of the index before it kept fingerprints are removed on open
 * ({@link dropOldChunkEntries}).
 */
export class LocalChunkIndex implements ChunkIndex {
  private readonly options: Required<LocalChunkIndexOptions>;
  private readonly location: string;
  private db: Promise<Db> | undefined;
  /** Where {@link record} encodes values for LevelDB to copy; undefined while one is in use. */
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

  /** Every lookup reads the last write (one LevelDB process): a `consistent` lookup is no different. */
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

  async record(pipeline: string, docs: readonly IndexedDoc[]): Promise<void> {
    validPipeline(pipeline);
    for (const doc of docs) checkDoc(doc);
    const db = await this.open();
    if (docs.length === 0) return;
    // One batch: applied whole or not at all, in order (a repeated key keeps its last entry).
    // The values are views of one buffer, reused by the next record(): classic-level copies
    // every entry into LevelDB's write batch before its promise settles. A Buffer per entry
    // (1.5 KiB a chunk when entries held vectors) left hundreds of pool slabs per record() in
    // the main thread's malloc heap until V8 collected them (heaptrack; docs/decisions.md); a
    // document's entry is smaller (16 B a chunk) but a unit's record() still has thousands.
    const scratch = this.takeScratch(docs.reduce((sum, doc) => sum + docValueBytes(doc), 0));
    try {
      const puts: Put[] = [];
      let at = 0;
      for (const doc of docs) {
        const end = at + encodeDocInto(scratch.subarray(at), doc);
        puts.push({ type: 'put', key: docKey(pipeline, doc.docId), value: scratch.subarray(at, end) });
        at = end;
      }
      await db.batch(puts);
    } finally {
      this.scratch = scratch;
    }
  }

  /**
   * Compacts the database's whole key range, so space held by overwritten and removed
   * entries is given back (`sluice gc`), and the ones {@link dropOldChunkEntries} removed
   * are gone even where its own compaction was cut short.
   */
  async compact(): Promise<void> {
    // Keys start with the pipeline name (ASCII); U+10FFFF sorts after every UTF-8 key.
    await (await this.open()).compactRange('\u0000', '\u{10FFFF}');
  }

  /**
   * The buffer to encode a record()'s values into: the kept one when it is free and large
   * enough, else a new one (kept in its place after use). A record() running at the same
   * time as another (two units) gets its own.
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

  /** Opens (or joins) the database, bringing older formats up to date on the first open in this process. */
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
      await dropOldChunkEntries(db);
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
    return db;
  }
}

/**
 * Removes the per-chunk entries (`<pipeline>/c/...`, each with its vector: 1.5 KiB a chunk
 * at 384 floats, GBs for a large home) that the index kept before it kept fingerprints per
 * document, and compacts their ranges so the space is given back. Done on open rather than
 * left to `sluice gc`: nothing reads those entries any more, and a home whose owner never
 * runs gc would keep them for good. It costs one pass over them on the first open after the
 * upgrade; every later open costs two seeks a pipeline (one to the pipeline's first key,
 * one to its old range, found empty), never a read of its documents. A
 * crash midway leaves the rest for the next open, or deletions not yet compacted for
 * LevelDB's own compactions and `sluice gc`'s.
 */
async function dropOldChunkEntries(db: Db): Promise<void> {
  const dropped: { gte: string; lt: string }[] = [];
  for (let from: string | undefined; ; ) {
    const [key] = await db.keys(from === undefined ? { limit: 1 } : { gte: from, limit: 1 }).all();
    if (key === undefined) break;
    const slash = key.indexOf('/');
    if (slash < 0) {
      from = `${key}\u0000`;
      continue;
    }
    const pipeline = key.slice(0, slash);
    const range = oldChunkRange(pipeline);
    if ((await db.keys({ ...range, limit: 1 }).all()).length > 0) {
      await db.clear(range);
      dropped.push(range);
    }
    // Past every key of `<pipeline>/`: `0` follows `/`, and a longer name that sorts between
    // the two (`<pipeline>-x/`) sorts before `<pipeline>/`, so it was met already.
    from = `${pipeline}0`;
  }
  for (const range of dropped) await db.compactRange(range.gte, range.lt);
}

/**
 * Imports the documents of one pipeline's old data log (records in log order, so later
 * ones supersede earlier ones), syncs them, then removes the old files, the data log last:
 * a crash before that leaves it to be imported again on the next open, over the same keys.
 * Its chunk records are skipped: their vectors now live only in the run's parts, so the
 * imported documents have no `chunks` and are embedded again once.
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
    await readOldDocs(dataLog, (record) => {
      if (!Number.isSafeInteger(record.n) || (record.n as number) < 0 || (record.n as number) > MAX_U32)
        return;
      const doc = {
        docId: record.d,
        chunkCount: record.n as number,
        ...(typeof record.s === 'string' && Buffer.byteLength(record.s) <= MAX_TEXT_BYTES
          ? { sourceKey: record.s }
          : {}),
      };
      puts.push({ type: 'put', key: docKey(pipeline, record.d), value: encodeDoc(doc) });
      if (puts.length >= IMPORT_BATCH) return flush();
    });
    await flush();
    // Durable before the old files go: a synced write syncs LevelDB's log, and every batch before it.
    await db.del(`${pipeline}/`, { sync: true });
  }
  await removeOldFiles(old.files);
}
