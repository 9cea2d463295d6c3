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
import { documentCost } from './sample-cost.ts';
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
interface Oversize {
  readonly byteOffset: number;
  readonly line: number;
  length: number;
  readonly excerpt: string;
  /** Its latest piece, to tell whether it ended with a newline. */
  last: Buffer;
}

/** Up to `count` bytes of `chunks` from `offset`, copied (a record's excerpt). */
function bytesOf(chunks: readonly Buffer[], offset: number, count: number): Buffer {
  const out: Buffer[] = [];
  let skip = offset;
  let left = count;
  for (const chunk of chunks) {
    if (left <= 0) break;
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    const piece = chunk.subarray(skip, skip + left);
    out.push(piece);
    left -= piece.length;
    skip = 0;
  }
  return Buffer.concat(out);
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
  source: { readonly key: string; readonly format: 'jsonl' | 'csv'; readonly version?: string },
  options: RestageOptions,
): Promise<RestageResult> {
  const maxPartBytes = options.maxPartBytes ?? 64 * 1024 * 1024;
  // About 128 priced records per part, and at least one in every 16 KiB.
  const partBytesGuess = options.partCost / Math.max(options.tokensPerByte, 1e-6);
  const sampleEvery = options.sampleEveryBytes ?? Math.max(256, Math.min(16 * 1024, partBytesGuess / 128));
  // The readers' own record ends, so every part starts where a reader finds a record start.
  const csv = source.format === 'csv';
  const ends: RecordEnds = csv ? new CsvRecordBoundaries(true) : new NewlineEnds();

  const parts: StagedPiece[] = [];
  let bytesIn = 0;
  let bytesOut = 0;
  let header: string | undefined;
  let headerFields: string[] | undefined;

  // The part being filled.
  let chunks: Buffer[] = [];
  let partBytes = 0;
  let partStart = 0;
  let partFirstLine = 1;
  let sampledTokens = 0; // over the whole file so far
  let sampledBytes = 0;
  // Records: lines so far, where the last one ended, and whether the current one is priced.
  let line = 1;
  let recordEndInPart = 0; // bytes of the part up to its last complete record
  let lineAtRecordEnd = 1;
  let sinceSample = sampleEvery; // price the first record
  let priced: Buffer[] | undefined = [];
  let pricedBytes = 0;
  let firstRecord = true;
  // A record over `input.maxRecordBytes` being measured (not copied), and the rejects of
  // such records the next part will carry.
  let oversize: Oversize | undefined;
  let pending: StagedReject[] = [];

  /** Keeps the first `bytes` of the part: the records before an oversized one. */
  const truncate = (bytes: number): void => {
    const kept: Buffer[] = [];
    let total = 0;
    for (const chunk of chunks) {
      if (total >= bytes) break;
      const take = Math.min(chunk.length, bytes - total);
      kept.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      total += take;
    }
    chunks = kept;
    partBytes = total;
  };
  const rejectOf = (record: Oversize): StagedReject => {
    // The reader measures a record over the limit without its newline (a CR before it counts).
    const length = record.last.at(-1) === LF ? record.length - 1 : record.length;
    return {
      reason: overLimitReason(length, config.input.maxRecordBytes),
      line: record.line,
      byteOffset: record.byteOffset,
      excerpt: record.excerpt,
    };
  };

  // Tokens per byte so far in the file: a part's own few priced records would be noisy.
  const ratio = (): number => (sampledBytes > 0 ? sampledTokens / sampledBytes : options.tokensPerByte);
  const partCost = (): number => partBytes * ratio();

  const recordCost = (bytes: Buffer): number => {
    const text = decodeUtf8(bytes);
    if (text === undefined || bytes.length > config.input.maxRecordBytes) return 0;
    const body = stripBom(text);
    if (source.format === 'jsonl') {
      try {
        const value = (JSON.parse(body) as Record<string, unknown> | null)?.[config.input.textField];
        return typeof value === 'string' ? documentCost(value, options.counter, config) : 0;
      } catch {
        return 0;
      }
    }
    const values = parseCsvRecord(body.replace(/\r\n/g, '\n'));
    const index = headerFields?.indexOf(config.input.textField) ?? -1;
    const value = index >= 0 && values?.length === headerFields?.length ? values?.[index] : undefined;
    return value === undefined ? 0 : documentCost(value, options.counter, config);
  };

  const writePart = async (bytes: number, fault?: StagedPart['fault']): Promise<void> => {
    let body = Buffer.concat(chunks, partBytes);
    if (bytes < body.length) body = body.subarray(0, bytes);
    const index = parts.length + 1;
    const key = stagedPartKey(options.runId, source.key, index, source.format);
    await store.put(key, body, source.format === 'csv' ? 'text/csv' : 'application/x-ndjson');
    bytesOut += body.length;
    parts.push({
      sourceKey: source.key,
      format: source.format,
      byteStart: partStart,
      byteEnd: partStart + body.length,
      firstLine: partFirstLine,
      ...(header === undefined || partStart === 0 ? {} : { csvHeader: header }),
      staged: {
        key,
        offset: partStart,
        ...(fault ? { fault } : {}),
        ...(pending.length > 0 ? { rejects: pending } : {}),
      },
      estCost: Math.round(body.length * ratio()),
    });
    partStart += body.length;
    partFirstLine = lineAtRecordEnd;
    pending = [];
    chunks = [];
    partBytes = 0;
    recordEndInPart = 0;
  };

  const compressed = (async function* () {
    const pinned = source.version === undefined ? {} : { version: source.version };
    for await (const chunk of store.readRange(source.key, 0, undefined, pinned)) {
      bytesIn += chunk.byteLength;
      yield chunk;
    }
  })();
  const maxRecord = config.input.maxRecordBytes;
  try {
    for await (const buf of gunzipBounded(compressed, config.input.maxDecompressionRatio)) {
      let from = 0;
      while (from < buf.length) {
        const end = ends.nextRecordEnd(buf, from);
        const stop = end === -1 ? buf.length : end + 1; // the newline goes with its record
        const piece = buf.subarray(from, stop);
        let at = piece.indexOf(LF);
        while (at !== -1) {
          line += 1;
          at = piece.indexOf(LF, at + 1);
        }
        if (oversize) {
          oversize.length += piece.length;
          oversize.last = piece;
        } else {
          chunks.push(piece);
          partBytes += piece.length;
          if (priced && pricedBytes <= maxRecord) {
            priced.push(piece);
            pricedBytes += piece.length;
          }
          if (firstRecord && csv && partBytes > MAX_CSV_HEADER_BYTES) {
            const skipped = `CSV header over ${MAX_CSV_HEADER_BYTES} bytes`;
            return { parts: [], bytesIn, bytesOut, faultBeforeFirstRecord: false, skipped };
          }
          if (partBytes - recordEndInPart > maxRecord + 2) {
            // Over the limit (its terminator aside): the worker would reject it, so it is
            // measured, not copied. The records before it close their part here.
            oversize = {
              byteOffset: partStart + recordEndInPart,
              line: lineAtRecordEnd,
              length: partBytes - recordEndInPart,
              // What the reader keeps of a record over the limit: its first limit + 1 bytes.
              excerpt: excerptOf(
                bytesOf(chunks, recordEndInPart, Math.min(EXCERPT_CHARS * 4, maxRecord + 1)),
              ),
              last: piece,
            };
            truncate(recordEndInPart);
            priced = undefined;
            if (partBytes > 0) await writePart(partBytes);
          }
        }
        if (end === -1) break;
        from = stop;
        if (oversize) {
          // The oversized record ended: the next part starts after it.
          pending.push(rejectOf(oversize));
          partStart = oversize.byteOffset + oversize.length;
          partFirstLine = line;
          lineAtRecordEnd = line;
          oversize = undefined;
          firstRecord = false;
          sinceSample = sampleEvery;
          priced = [];
          pricedBytes = 0;
          if (pending.length >= MAX_STAGED_REJECTS) await writePart(0);
          continue;
        }
        // A record ended at `position`.
        recordEndInPart = partBytes;
        lineAtRecordEnd = line;
        if (priced) {
          const bytes = Buffer.concat(priced).subarray(0, Math.max(0, pricedBytes - 1));
          if (firstRecord && source.format === 'csv') {
            header = stripBom(decodeUtf8(bytes) ?? '').replace(/\r$/, '');
            headerFields = parseCsvRecord(header.replace(/\r\n/g, '\n'));
            if (Buffer.byteLength(header) > MAX_CSV_HEADER_BYTES) {
              const skipped = `CSV header over ${MAX_CSV_HEADER_BYTES} bytes`;
              return { parts: [], bytesIn, bytesOut, faultBeforeFirstRecord: false, skipped };
            }
          } else {
            sampledTokens += recordCost(bytes.at(-1) === 0x0d ? bytes.subarray(0, -1) : bytes);
            sampledBytes += pricedBytes;
          }
          priced = undefined;
          sinceSample = 0;
        }
        firstRecord = false;
        sinceSample += piece.length;
        if (sinceSample >= sampleEvery) {
          priced = [];
          pricedBytes = 0;
        }
        if (partCost() >= options.partCost || partBytes >= maxPartBytes) await writePart(partBytes);
      }
    }
  } catch (error) {
    if (!isGzipFault(error)) throw error;
    // An oversized record the fault cut short is not a record of its own: the fault stands for it.
    const fault = {
      reason: gzipFaultReason(error),
      line: lineAtRecordEnd,
      byteOffset: partStart + recordEndInPart,
    };
    if (recordEndInPart > 0 || pending.length > 0) {
      await writePart(recordEndInPart, fault);
    } else if (parts.length > 0) {
      const last = parts.pop()!;
      parts.push({ ...last, staged: { ...last.staged, fault } });
    } else {
      return { parts: [], bytesIn, bytesOut, faultBeforeFirstRecord: true };
    }
    return { parts, bytesIn, bytesOut, faultBeforeFirstRecord: false };
  }
  if (oversize) {
    // The file ended inside the oversized record.
    pending.push(rejectOf(oversize));
    partStart = oversize.byteOffset + oversize.length;
    oversize = undefined;
  }
  if (partBytes > 0 || pending.length > 0) {
    lineAtRecordEnd = line;
    await writePart(partBytes);
  }
  return { parts, bytesIn, bytesOut, faultBeforeFirstRecord: false };
}
