import { readSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * A run file: entries of 20 bytes (hash as a float64, offset as a float64, length as a
 * uint32, little-endian), then the fences (the first hash of each block of
 * {@link BLOCK_ENTRIES} entries, float64), then a trailer of 24 bytes: the magic, the
 * entry count (float64), the fence count and the block size in entries (uint32 each).
 * A run of an index is sorted by hash with each hash once; a run written by compaction
 * to sort the live entries by offset uses the same layout, unsorted by hash.
 */
export const ENTRY_BYTES = 20;
/** Entries of a block: what one positional read of a lookup fetches (4080 bytes). */
export const BLOCK_ENTRIES = 204;
export const BLOCK_BYTES = ENTRY_BYTES * BLOCK_ENTRIES;
const TRAILER_BYTES = 24;
const MAGIC = Buffer.from('SLCIRUN1', 'latin1');
/** Entries buffered by a writer or a sequential reader (64 KiB). */
const STREAM_ENTRIES = 3276;

/** An immutable run on disk; only its fences are in memory. */
export interface Run {
  readonly name: string;
  readonly file: string;
  readonly entries: number;
  /** The first hash of each block, to find the one block a hash can be in. */
  readonly fences: Float64Array;
}

/**
 * Reads blocks `first` to `last` of `run` (open as `fd`) into `buffer` with one positional
 * read, and returns the entries read. Synchronous on purpose: a read of a block the page
 * cache holds takes a microsecond or two, where an asynchronous one costs ten times that
 * in the thread pool, and a lookup makes one per run per key; it also means a lookup
 * resolves its hashes against runs that cannot be merged away under it.
 */
export function readBlocks(run: Run, fd: number, buffer: Buffer, first: number, last: number): number {
  const firstEntry = first * BLOCK_ENTRIES;
  const entries = Math.min(run.entries, (last + 1) * BLOCK_ENTRIES) - firstEntry;
  const bytes = entries * ENTRY_BYTES;
  let read = 0;
  while (read < bytes) {
    const got = readSync(fd, buffer, read, bytes - read, firstEntry * ENTRY_BYTES + read);
    if (got === 0) throw new Error(`${run.file} is shorter than its ${run.entries} entries`);
    read += got;
  }
  return entries;
}

/** The block of `run` that holds `hash` if any entry does, or -1 when it is below the run's first hash. */
export function blockOf(run: Run, hash: number): number {
  const { fences } = run;
  let low = 0;
  let high = fences.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (fences[mid]! <= hash) low = mid + 1;
    else high = mid;
  }
  return low - 1;
}

/** Entries in block `block` of `run`. */
export function blockLength(run: Run, block: number): number {
  return Math.min(BLOCK_ENTRIES, run.entries - block * BLOCK_ENTRIES);
}

/** The index (from `from`, of `count` entries of `bytes`) of the entry with `hash`, or -1. */
export function searchEntries(bytes: Buffer, from: number, count: number, hash: number): number {
  let low = from;
  let high = from + count - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const found = bytes.readDoubleLE(mid * ENTRY_BYTES);
    if (found === hash) return mid;
    if (found < hash) low = mid + 1;
    else high = mid - 1;
  }
  return -1;
}

export const entryOffset = (bytes: Buffer, entry: number): number =>
  bytes.readDoubleLE(entry * ENTRY_BYTES + 8);
export const entryLength = (bytes: Buffer, entry: number): number =>
  bytes.readUInt32LE(entry * ENTRY_BYTES + 16);

/**
 * Writes a run to `<file>.tmp` and, once it is whole and synced, renames it to `<file>`:
 * a run file that exists is complete.
 */
export class RunWriter {
  private readonly buffer = Buffer.allocUnsafe(STREAM_ENTRIES * ENTRY_BYTES);
  private used = 0;
  private count = 0;
  private fences = new Float64Array(16);
  private lastHash = -1;

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    private readonly sortedByHash: boolean,
  ) {}

  static async create(file: string, sortedByHash = true): Promise<RunWriter> {
    return new RunWriter(file, await open(`${file}.tmp`, 'w'), sortedByHash);
  }

  /** Adds an entry; returns a promise only when the buffer was written out. */
  add(hash: number, offset: number, length: number): Promise<void> | undefined {
    if (this.sortedByHash) {
      if (!(hash > this.lastHash)) throw new Error(`RunWriter: ${hash} after ${this.lastHash}`);
      this.lastHash = hash;
    }
    if (this.count % BLOCK_ENTRIES === 0) {
      const fence = this.count / BLOCK_ENTRIES;
      if (fence === this.fences.length) {
        const grown = new Float64Array(this.fences.length * 2);
        grown.set(this.fences);
        this.fences = grown;
      }
      this.fences[fence] = hash;
    }
    this.buffer.writeDoubleLE(hash, this.used);
    this.buffer.writeDoubleLE(offset, this.used + 8);
    this.buffer.writeUInt32LE(length, this.used + 16);
    this.used += ENTRY_BYTES;
    this.count += 1;
    return this.used === this.buffer.length ? this.drain() : undefined;
  }

  /**
   * Writes a whole run: the entries at `order` (every index, in order, by default), then
   * the footer; the unfinished file is removed if a write fails.
   */
  static async write(
    file: string,
    entries: { readonly hashes: Float64Array; readonly offsets: Float64Array; readonly lengths: Uint32Array },
    options: { readonly sortedByHash?: boolean; readonly order?: Iterable<number> } = {},
  ): Promise<Run> {
    const { hashes, offsets, lengths } = entries;
    const writer = await RunWriter.create(file, options.sortedByHash ?? true);
    try {
      for (const i of options.order ?? hashes.keys()) {
        const written = writer.add(hashes[i]!, offsets[i]!, lengths[i]!);
        if (written) await written;
      }
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer.finish();
  }

  /** Writes the fences and trailer, syncs, closes and renames the file into place. */
  async finish(): Promise<Run> {
    try {
      await this.drain();
      const fenceCount = Math.ceil(this.count / BLOCK_ENTRIES);
      const fences = this.fences.slice(0, fenceCount);
      const trailer = Buffer.alloc(TRAILER_BYTES);
      MAGIC.copy(trailer, 0);
      trailer.writeDoubleLE(this.count, 8);
      trailer.writeUInt32LE(fenceCount, 16);
      trailer.writeUInt32LE(BLOCK_ENTRIES, 20);
      await this.handle.write(Buffer.from(fences.buffer, fences.byteOffset, fences.byteLength));
      await this.handle.write(trailer);
      await this.handle.sync();
      await this.handle.close();
      await rename(`${this.file}.tmp`, this.file);
      return { name: path.basename(this.file), file: this.file, entries: this.count, fences };
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Closes and removes the unfinished file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await unlink(`${this.file}.tmp`).catch(() => undefined);
  }

  private async drain(): Promise<void> {
    if (this.used === 0) return;
    const used = this.used;
    this.used = 0;
    let written = 0;
    while (written < used)
      written += (await this.handle.write(this.buffer, written, used - written)).bytesWritten;
  }
}

/**
 * The run in `file` with its fences, or undefined when the file is missing or is not a
 * whole run of `entries` entries (a run the manifest names is complete, so this means
 * it was damaged or removed by hand).
 */
export async function openRun(file: string, entries: number): Promise<Run | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const fenceCount = Math.ceil(entries / BLOCK_ENTRIES);
    if (size !== entries * ENTRY_BYTES + fenceCount * 8 + TRAILER_BYTES) return undefined;
    const tail = Buffer.allocUnsafe(fenceCount * 8 + TRAILER_BYTES);
    const { bytesRead } = await handle.read(tail, 0, tail.length, entries * ENTRY_BYTES);
    if (bytesRead !== tail.length) return undefined;
    const trailer = tail.subarray(fenceCount * 8);
    if (
      !trailer.subarray(0, 8).equals(MAGIC) ||
      trailer.readDoubleLE(8) !== entries ||
      trailer.readUInt32LE(16) !== fenceCount ||
      trailer.readUInt32LE(20) !== BLOCK_ENTRIES
    )
      return undefined;
    const fences = new Float64Array(fenceCount);
    for (let i = 0; i < fenceCount; i += 1) fences[i] = tail.readDoubleLE(i * 8);
    return { name: path.basename(file), file, entries, fences };
  } finally {
    await handle.close();
  }
}

/** Reads a run's entries in order, 64 KiB at a time: the current entry is in `hash`, `offset`, `length`. */
export class RunReader {
  hash = 0;
  offset = 0;
  length = 0;
  done = false;
  private readonly buffer: Buffer;
  private at = 0;
  private end = 0;
  private read = 0;

  private constructor(
    private readonly run: Pick<Run, 'file' | 'entries'>,
    private readonly handle: FileHandle,
  ) {
    this.buffer = Buffer.allocUnsafe(Math.max(1, Math.min(STREAM_ENTRIES, run.entries)) * ENTRY_BYTES);
  }

  /** Opens a run at its first entry. */
  static async open(run: Pick<Run, 'file' | 'entries'>): Promise<RunReader> {
    const reader = new RunReader(run, await open(run.file, 'r'));
    try {
      await reader.next();
    } catch (error) {
      await reader.close();
      throw error;
    }
    return reader;
  }

  /** Moves to the next entry; returns a promise only when it had to read. */
  next(): Promise<void> | undefined {
    if (this.at < this.end) {
      this.load();
      return undefined;
    }
    return this.refill();
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  private load(): void {
    this.hash = this.buffer.readDoubleLE(this.at);
    this.offset = this.buffer.readDoubleLE(this.at + 8);
    this.length = this.buffer.readUInt32LE(this.at + 16);
    this.at += ENTRY_BYTES;
  }

  private async refill(): Promise<void> {
    const want = Math.min(this.buffer.length / ENTRY_BYTES, this.run.entries - this.read);
    if (want <= 0) {
      this.done = true;
      return;
    }
    const bytes = want * ENTRY_BYTES;
    const { bytesRead } = await this.handle.read(this.buffer, 0, bytes, this.read * ENTRY_BYTES);
    if (bytesRead !== bytes)
      throw new Error(`${this.run.file} is shorter than its ${this.run.entries} entries`);
    this.read += want;
    this.at = 0;
    this.end = bytes;
    this.load();
  }
}

/**
 * Merges runs, newest first, into one stream in ascending order of `by`, handing each
 * entry to `emit`. Entries with equal hashes (when merging by hash) resolve to the
 * newest run's; the others are passed to `dropped`. Closes the readers.
 */
export async function mergeRuns(
  runs: readonly Pick<Run, 'file' | 'entries'>[],
  by: 'hash' | 'offset',
  emit: (hash: number, offset: number, length: number) => Promise<void> | undefined,
  dropped: (length: number) => void = () => undefined,
): Promise<void> {
  const readers: RunReader[] = [];
  try {
    for (const run of runs) readers.push(await RunReader.open(run));
    const byHash = by === 'hash';
    for (;;) {
      let min = -1;
      let least = Number.POSITIVE_INFINITY;
      for (let i = 0; i < readers.length; i += 1) {
        const reader = readers[i]!;
        const key = byHash ? reader.hash : reader.offset;
        if (!reader.done && key < least) {
          least = key;
          min = i;
        }
      }
      if (min < 0) return;
      const winner = readers[min]!;
      const emitted = emit(winner.hash, winner.offset, winner.length);
      if (emitted) await emitted;
      for (let i = min; i < readers.length; i += 1) {
        const reader = readers[i]!;
        if (reader.done || (byHash ? reader.hash : reader.offset) !== least) continue;
        if (i !== min) dropped(reader.length);
        const moved = reader.next();
        if (moved) await moved;
      }
    }
  } finally {
    await Promise.all(readers.map((reader) => reader.close().catch(() => undefined)));
  }
}
