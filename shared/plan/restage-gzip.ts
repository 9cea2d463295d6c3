import { createHash } from 'node:crypto';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import { MAX_STAGED_REJECTS, type StagedPart } from '../domain/types.ts';
import type { TokenCounter } from '../embedding/token-counter.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { gunzipBounded } from '../readers/bounded-gunzip.ts';
import { CsvRecordBoundaries, parseCsvRecord } from '../readers/csv.ts';
import { decodeUtf8, EXCERPT_CHARS, excerptOf, overLimitReason, stripBom } from '../readers/record-rules.ts';
import { NewlineEnds, type RecordEnds } from '../readers/record-scanner.ts';
import { gzipFaultReason, isGzipFault } from '../readers/source-records.ts';
import { OpenPart } from './restage-part.ts';
import { RestageSampler, recordTokens } from './restage-sampler.ts';
import { MAX_CSV_HEADER_BYTES } from './unit-limits.ts';

/** Where re-staged parts are written; an S3 lifecycle rule should expire this prefix. */
export const STAGING_PREFIX = 'staging/';

/** One re-staged part: a range of the decompressed source, held in its own object. */
export interface StagedPiece {
  readonly sourceKey: string;
  readonly format: 'jsonl' | 'csv';
  /** Offsets in the source's decompressed stream. */
  readonly byteStart: number;
  readonly byteEnd: number;
  /** Line of the part's first record in the source. */
  readonly firstLine: number;
  readonly csvHeader?: string;
  readonly staged: StagedPart;
  readonly estCost: number;
}

export interface RestageOptions {
  readonly runId: string;
  /** Estimated tokens a part should hold: one unit's worth. */
  readonly partCost: number;
  /** Tokens per decompressed byte from the planner's sample, until the pass measures its own. */
  readonly tokensPerByte: number;
  readonly counter: TokenCounter;
  /** A part is cut at the next record end past this size, whatever its cost. @default 64 MiB */
  readonly maxPartBytes?: number;
  /** One record in every this many bytes is parsed and priced. @default 16 KiB */
  readonly sampleEveryBytes?: number;
}

export interface RestageResult {
  readonly parts: StagedPiece[];
  /** Compressed bytes read and decompressed bytes written. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The stream was broken before its first record ended: nothing could be staged. */
  readonly faultBeforeFirstRecord: boolean;
  /** Why nothing was staged although the stream is sound (a CSV header too long to copy into units). */
  readonly skipped?: string;
}

const LF = 0x0a;

type StagedReject = NonNullable<StagedPart['rejects']>[number];

/** A record over the size limit while re-staging: where it started, how long it is so far. */
export interface Oversize {
  readonly byteOffset: number;
  readonly line: number;
  length: number;
  readonly excerpt: string;
  /** Its latest piece, to tell whether it ended with a newline. */
  last: Buffer;
}

/** `staging/<runId>/<digest of the source key>/part-00001.jsonl` */
export function stagedPartKey(
  runId: string,
  sourceKey: string,
  index: number,
  format: 'jsonl' | 'csv',
): string {
  const digest = createHash('sha256').update(sourceKey).digest('hex').slice(0, 16);
  return `${STAGING_PREFIX}${runId}/${digest}/part-${String(index).padStart(5, '0')}.${format}`;
}

/**
 * Re-stages a gzip JSONL or CSV source in ONE streaming pass into uncompressed parts of
 * about `partCost` estimated tokens each, cut at record ends (CSV by the reader's quote
 * rules), so that a source gzip cannot be split by byte range is still read by many
 * workers. Each part remembers where it was in the source (offset and first line), so
 * ids and rejects name the original key and line. The cost of a part is measured on the
 * way, by pricing one record in every `sampleEveryBytes`.
 *
 * A corrupt or truncated stream keeps the records before the fault; the last part
 * carries the fault, and its unit reports it as one reject.
 *
 * A record over `input.maxRecordBytes` is measured, never copied: the part before it
 * closes, it travels as a reject in the next part's descriptor (`staged.rejects`), and
 * the next part starts after it. A stream that expands more than
 * `input.maxDecompressionRatio` times ends as a corrupt one does.
 *
 * Memory: one part (at most `maxPartBytes` plus one record of `input.maxRecordBytes`),
 * since the object store takes whole objects.
 */
export async function restageGzip(
  store: ObjectStore,
  config: PipelineConfig,
  source: RestageSource,
  options: RestageOptions,
): Promise<RestageResult> {
  return new GzipRestager(store, config, source, options).run();
}

/** The gzip source re-staged. */
export interface RestageSource {
  readonly key: string;
  readonly format: 'jsonl' | 'csv';
  /** The version planned, so every read sees the same object. */
  readonly version?: string;
}

const HEADER_TOO_LONG = `CSV header over ${MAX_CSV_HEADER_BYTES} bytes`;

/** The reject a record over the limit becomes once its end is found. */
export function oversizeReject(record: Oversize, maxRecordBytes: number): StagedReject {
  // The reader measures a record over the limit without its newline (a CR before it counts).
  const length = record.last.at(-1) === LF ? record.length - 1 : record.length;
  return {
    reason: overLimitReason(length, maxRecordBytes),
    line: record.line,
    byteOffset: record.byteOffset,
    excerpt: record.excerpt,
  };
}

/** Line feeds in a piece of the stream. */
function lineFeeds(piece: Buffer): number {
  let count = 0;
  for (let at = piece.indexOf(LF); at !== -1; at = piece.indexOf(LF, at + 1)) count += 1;
  return count;
}

/**
 * One pass of {@link restageGzip}, its state explicit: the part being filled, the cost
 * sampler, the record being measured when it is over the limit, the parts written.
 * Each decompressed buffer is cut at record ends; each piece is copied (or measured),
 * and each record end may price the record and close the part.
 */
class GzipRestager {
  private readonly csv: boolean;
  private readonly ends: RecordEnds;
  private readonly maxRecord: number;
  private readonly maxPartBytes: number;
  private readonly part = new OpenPart();
  private readonly sampler: RestageSampler;
  private readonly parts: StagedPiece[] = [];
  private bytesIn = 0;
  private bytesOut = 0;
  private header: string | undefined;
  private headerFields: string[] | undefined;
  /** Lines so far, and the line after the last complete record. */
  private line = 1;
  private lineAtRecordEnd = 1;
  private firstRecord = true;
  /** A record over `input.maxRecordBytes` being measured, not copied. */
  private oversize: Oversize | undefined;
  /** Rejects of such records, carried by the next part. */
  private pending: StagedReject[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly config: PipelineConfig,
    private readonly source: RestageSource,
    private readonly options: RestageOptions,
  ) {
    this.csv = source.format === 'csv';
    // The readers' own record ends, so every part starts where a reader finds a record start.
    this.ends = this.csv ? new CsvRecordBoundaries(true) : new NewlineEnds();
    this.maxRecord = config.input.maxRecordBytes;
    this.maxPartBytes = options.maxPartBytes ?? 64 * 1024 * 1024;
    // About 128 priced records per part, and at least one in every 16 KiB.
    const partBytesGuess = options.partCost / Math.max(options.tokensPerByte, 1e-6);
    const sampleEvery = options.sampleEveryBytes ?? Math.max(256, Math.min(16 * 1024, partBytesGuess / 128));
    this.sampler = new RestageSampler(sampleEvery, this.maxRecord, options.tokensPerByte);
  }

  async run(): Promise<RestageResult> {
    try {
      for await (const buf of gunzipBounded(this.compressed(), this.config.input.maxDecompressionRatio)) {
        const skipped = await this.consume(buf);
        if (skipped !== undefined) return { ...this.result([]), skipped };
      }
    } catch (error) {
      if (!isGzipFault(error)) throw error;
      return this.endAtFault(error);
    }
    return this.finish();
  }

  private async *compressed(): AsyncGenerator<Uint8Array> {
    const pinned = this.source.version === undefined ? {} : { version: this.source.version };
    for await (const chunk of this.store.readRange(this.source.key, 0, undefined, pinned)) {
      this.bytesIn += chunk.byteLength;
      yield chunk;
    }
  }

  private result(parts: StagedPiece[], faultBeforeFirstRecord = false): RestageResult {
    return { parts, bytesIn: this.bytesIn, bytesOut: this.bytesOut, faultBeforeFirstRecord };
  }

  /** Cuts a decompressed buffer at record ends; returns why the source is skipped, if it is. */
  private async consume(buf: Buffer): Promise<string | undefined> {
    let from = 0;
    while (from < buf.length) {
      const end = this.ends.nextRecordEnd(buf, from);
      const stop = end === -1 ? buf.length : end + 1; // the newline goes with its record
      const piece = buf.subarray(from, stop);
      this.line += lineFeeds(piece);
      if (this.oversize) this.measure(this.oversize, piece);
      else {
        const skipped = await this.copy(piece);
        if (skipped !== undefined) return skipped;
      }
      if (end === -1) return undefined;
      from = stop;
      const skipped = this.oversize ? await this.endOversize(this.oversize) : await this.endRecord(piece);
      if (skipped !== undefined) return skipped;
    }
    return undefined;
  }

  private measure(oversize: Oversize, piece: Buffer): void {
    oversize.length += piece.length;
    oversize.last = piece;
  }

  /** Copies a piece of the record being read; one that grows over the limit is measured from now on. */
  private async copy(piece: Buffer): Promise<string | undefined> {
    this.part.append(piece);
    this.sampler.collect(piece);
    if (this.firstRecord && this.csv && this.part.bytes > MAX_CSV_HEADER_BYTES) return HEADER_TOO_LONG;
    // Over the limit (its terminator aside): the worker would reject it.
    if (this.part.openRecordBytes > this.maxRecord + 2) await this.startOversize(piece);
    return undefined;
  }

  /** The records before an oversized one close their part here. */
  private async startOversize(piece: Buffer): Promise<void> {
    const { part } = this;
    this.oversize = {
      byteOffset: part.start + part.recordEnd,
      line: this.lineAtRecordEnd,
      length: part.openRecordBytes,
      // What the reader keeps of a record over the limit: its first limit + 1 bytes.
      excerpt: excerptOf(part.bytesAt(part.recordEnd, Math.min(EXCERPT_CHARS * 4, this.maxRecord + 1))),
      last: piece,
    };
    part.truncate(part.recordEnd);
    this.sampler.drop();
    if (part.bytes > 0) await this.writePart(part.bytes);
  }

  /** The oversized record ended: it becomes a reject, and the next part starts after it. */
  private async endOversize(oversize: Oversize): Promise<undefined> {
    this.pending.push(oversizeReject(oversize, this.maxRecord));
    this.part.start = oversize.byteOffset + oversize.length;
    this.part.firstLine = this.line;
    this.lineAtRecordEnd = this.line;
    this.oversize = undefined;
    this.firstRecord = false;
    this.sampler.restart();
    if (this.pending.length >= MAX_STAGED_REJECTS) await this.writePart(0);
    return undefined;
  }

  /** A record ended with `piece`: priced when sampled (a CSV's first is its header), the part closed when full. */
  private async endRecord(piece: Buffer): Promise<string | undefined> {
    this.part.endRecord();
    this.lineAtRecordEnd = this.line;
    const priced = this.sampler.endRecord(piece);
    if (priced && this.firstRecord && this.csv) {
      if (!this.readHeader(priced.bytes)) return HEADER_TOO_LONG;
    } else if (priced) {
      const tokens = recordTokens(
        priced.bytes,
        this.source.format,
        this.headerFields,
        this.config,
        this.options.counter,
      );
      this.sampler.add(tokens, priced.length);
    }
    this.firstRecord = false;
    const cost = this.part.bytes * this.sampler.tokensPerByte;
    if (cost >= this.options.partCost || this.part.bytes >= this.maxPartBytes)
      await this.writePart(this.part.bytes);
    return undefined;
  }

  /** Keeps the CSV header for the parts after the first; false when it is too long to copy into units. */
  private readHeader(bytes: Buffer): boolean {
    const header = stripBom(decodeUtf8(bytes) ?? '').replace(/\r$/, '');
    this.header = header;
    this.headerFields = parseCsvRecord(header.replace(/\r\n/g, '\n'));
    return Buffer.byteLength(header) <= MAX_CSV_HEADER_BYTES;
  }

  /** Writes the first `bytes` of the part (and the pending rejects) as the next staged part. */
  private async writePart(bytes: number, fault?: StagedPart['fault']): Promise<void> {
    const { part, source } = this;
    const body = part.body(bytes);
    const key = stagedPartKey(this.options.runId, source.key, this.parts.length + 1, source.format);
    await this.store.put(key, body, this.csv ? 'text/csv' : 'application/x-ndjson');
    this.bytesOut += body.length;
    this.parts.push({
      sourceKey: source.key,
      format: source.format,
      byteStart: part.start,
      byteEnd: part.start + body.length,
      firstLine: part.firstLine,
      ...(this.header === undefined || part.start === 0 ? {} : { csvHeader: this.header }),
      staged: {
        key,
        offset: part.start,
        ...(fault ? { fault } : {}),
        ...(this.pending.length > 0 ? { rejects: this.pending } : {}),
      },
      estCost: Math.round(body.length * this.sampler.tokensPerByte),
    });
    part.advance(body.length, this.lineAtRecordEnd);
    this.pending = [];
  }

  /**
   * A corrupt or truncated stream keeps the records before the fault, and the last part
   * carries it. An oversized record the fault cut short is not a record of its own: the
   * fault stands for it.
   */
  private async endAtFault(error: unknown): Promise<RestageResult> {
    const { part } = this;
    const fault = {
      reason: gzipFaultReason(error),
      line: this.lineAtRecordEnd,
      byteOffset: part.start + part.recordEnd,
    };
    if (part.recordEnd > 0 || this.pending.length > 0) await this.writePart(part.recordEnd, fault);
    else if (this.parts.length > 0) {
      const last = this.parts.pop()!;
      this.parts.push({ ...last, staged: { ...last.staged, fault } });
    } else return this.result([], true);
    return this.result(this.parts);
  }

  /** The stream ended: the last part holds what is left (the file may end inside an oversized record). */
  private async finish(): Promise<RestageResult> {
    if (this.oversize) {
      this.pending.push(oversizeReject(this.oversize, this.maxRecord));
      this.part.start = this.oversize.byteOffset + this.oversize.length;
      this.oversize = undefined;
    }
    if (this.part.bytes > 0 || this.pending.length > 0) {
      this.lineAtRecordEnd = this.line;
      await this.writePart(this.part.bytes);
    }
    return this.result(this.parts);
  }
}
