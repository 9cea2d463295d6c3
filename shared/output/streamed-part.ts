import type { ObjectStore, ObjectWrite } from '../ports/object-store.ts';
import type { ParquetPartWriter } from './parquet-tables.ts';

/** Encoded bytes a part holds before they are handed to the store. */
const HAND_OVER_BYTES = 4 * 1024 * 1024;

/**
 * Opens a piecewise write of `key`: the store's own (S3 multipart upload, a temporary file
 * locally), else pieces kept until `finish` writes them with one `put`.
 */
export async function openObjectWrite(
  store: ObjectStore,
  key: string,
  contentType?: string,
): Promise<ObjectWrite> {
  if (store.openWrite) return store.openWrite(key, contentType);
  let pieces: Uint8Array[] = [];
  return {
    async write(bytes) {
      pieces.push(bytes);
    },
    async finish() {
      // A buffer of its own, exactly the object's size (not a view into Node's shared pool).
      const body = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.byteLength, 0));
      let at = 0;
      for (const piece of pieces) {
        body.set(piece, at);
        at += piece.byteLength;
      }
      pieces = [];
      await store.put(key, body, contentType);
    },
    async abort() {
      pieces = [];
    },
  };
}

/**
 * A unit's Parquet part written to the object store as its row groups are encoded, so a
 * unit holds a few MiB of encoded part instead of all of it (384-float vectors make a
 * unit of short records hundreds of MB). The object appears whole at `finish`, replacing
 * an earlier attempt's, as a `put` would.
 */
export class StreamedPart<Row> {
  private write: ObjectWrite | undefined;

  constructor(
    private readonly store: ObjectStore,
    readonly key: string,
    private readonly writer: ParquetPartWriter<Row>,
    private readonly contentType = 'application/vnd.apache.parquet',
  ) {}

  /** Rows added so far. */
  get rows(): number {
    return this.writer.rows;
  }

  async add(rows: Iterable<Row>): Promise<void> {
    this.writer.add(rows);
    if (this.writer.pendingBytes >= HAND_OVER_BYTES) await this.handOver(this.writer.takeBytes());
  }

  /**
   * Writes the last group and the footer and makes the part visible. A part without rows
   * is not written at all (returns false) unless `writeEmpty`: a rewrite that dropped every
   * row must still replace the part it rewrites.
   */
  async finish(writeEmpty = false): Promise<boolean> {
    if (this.writer.rows === 0 && !writeEmpty) {
      await this.abort();
      return false;
    }
    await this.handOver(this.writer.finish());
    const write = this.write!;
    this.write = undefined;
    await write.finish();
    return true;
  }

  /** Drops what was written (a failed unit); an earlier attempt's part stays as it was. */
  async abort(): Promise<void> {
    const write = this.write;
    this.write = undefined;
    await write?.abort();
  }

  private async handOver(bytes: Uint8Array): Promise<void> {
    this.write ??= await openObjectWrite(this.store, this.key, this.contentType);
    await this.write.write(bytes);
  }
}
