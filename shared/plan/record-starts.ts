import type { ObjectStore } from '../ports/object-store.ts';
import { CsvRecordBoundaries } from '../readers/csv.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';

/** A record start found by the planner, with the 1-based line it is on. */
export interface RecordStart {
  readonly offset: number;
  readonly line: number;
}

export interface RecordStartsResult {
  /** For each wanted offset, the first record start at or after it (fewer when the file ends first). */
  readonly starts: RecordStart[];
  /** A CSV file's header record, for units that start mid-file. */
  readonly csvHeader?: string;
  /** How the starts were proven, and what it cost. */
  readonly method: 'parallel-lines' | 'csv-scan';
  readonly bytesRead: number;
}

export interface RecordStartsOptions {
  /** Ranged reads in flight when counting lines. @default 8 */
  readonly concurrency?: number;
  /** Segments the line count is split into, so big files are read in parallel. @default 16 */
  readonly segments?: number;
  /** A CSV sample saw a quote: skip the parallel attempt and scan quotes from the start. */
  readonly maybeQuoted?: boolean;
  /** Longest header kept. @default 1 MiB */
  readonly maxHeaderBytes?: number;
}

const LF = 0x0a;
const QUOTE = 0x22;
const CR = 0x0d;

function countByte(buf: Uint8Array, byte: number): number {
  let count = 0;
  let at = buf.indexOf(byte);
  while (at !== -1) {
    count += 1;
    at = buf.indexOf(byte, at + 1);
  }
  return count;
}

interface Segment {
  readonly start: number;
  readonly end: number;
  /** Only the first newline matters (the segment after the last cut). */
  readonly probe: boolean;
}

interface SegmentCount {
  newlines: number;
  quotes: number;
  /** Absolute offset of the segment's first newline, or -1. */
  firstNewline: number;
  bytesRead: number;
}

/** A source as the cut pass reads it: the key, and the version planning pinned. */
interface PinnedKey {
  readonly key: string;
  readonly version?: string | undefined;
}

function pinnedRead(
  store: ObjectStore,
  source: PinnedKey,
  start: number,
  end?: number,
): AsyncIterable<Uint8Array> {
  return store.readRange(
    source.key,
    start,
    end,
    source.version === undefined ? {} : { version: source.version },
  );
}

async function countSegment(
  store: ObjectStore,
  key: PinnedKey,
  segment: Segment,
  countQuotes: boolean,
): Promise<SegmentCount> {
  const out: SegmentCount = { newlines: 0, quotes: 0, firstNewline: -1, bytesRead: 0 };
  let position = segment.start;
  for await (const chunk of pinnedRead(store, key, segment.start, segment.end)) {
    out.bytesRead += chunk.byteLength;
    if (out.firstNewline === -1) {
      const at = chunk.indexOf(LF);
      if (at !== -1) {
        out.firstNewline = position + at;
        if (segment.probe) {
          // Quotes before the newline still come before the last cut.
          if (countQuotes) out.quotes += countByte(chunk.subarray(0, at), QUOTE);
          break;
        }
      }
    }
    out.newlines += countByte(chunk, LF);
    if (countQuotes) out.quotes += countByte(chunk, QUOTE);
    position += chunk.byteLength;
  }
  return out;
}

function headerText(bytes: Buffer): string {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === CR) end -= 1;
  let start = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
  return bytes.subarray(start, end).toString('utf8');
}

async function firstLineOf(
  store: ObjectStore,
  key: PinnedKey,
  size: number,
  limit: number,
): Promise<{ text: string; read: number }> {
  const parts: Buffer[] = [];
  let read = 0;
  for await (const chunk of pinnedRead(store, key, 0, Math.min(size, limit))) {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    read += buf.length;
    const at = buf.indexOf(LF);
    if (at !== -1) {
      parts.push(buf.subarray(0, at));
      break;
    }
    parts.push(buf);
  }
  return { text: headerText(Buffer.concat(parts)), read };
}

/**
 * Line starts by the split rule of Hadoop's LineRecordReader, proven by counting
 * newlines: the file is cut into segments read in parallel, each counting its newlines
 * and noting its first one; the line number of a start is then a prefix sum. Only the
 * part after the last cut is probed just up to its first newline.
 */
async function lineStarts(
  store: ObjectStore,
  key: PinnedKey,
  size: number,
  wanted: readonly number[],
  options: RecordStartsOptions,
  countQuotes: boolean,
): Promise<{ starts: RecordStart[]; quotes: number; bytesRead: number }> {
  const cuts = [...new Set(wanted.filter((w) => w > 0 && w < size))].sort((a, b) => a - b);
  if (cuts.length === 0) return { starts: [], quotes: 0, bytesRead: 0 };
  const last = cuts.at(-1)! - 1;
  const parallel = options.segments ?? 16;
  const bounds = new Set<number>([0, ...cuts.map((c) => c - 1)]);
  for (let i = 1; i < parallel; i += 1) {
    const at = Math.floor((size * i) / parallel);
    if (at < last) bounds.add(at);
  }
  const sorted = [...bounds].sort((a, b) => a - b);
  const segments: Segment[] = sorted.map((start, i) => ({
    start,
    end: sorted[i + 1] ?? size,
    probe: i === sorted.length - 1,
  }));
  const counts = await mapWithConcurrency(segments, options.concurrency ?? 8, (segment) =>
    countSegment(store, key, segment, countQuotes),
  );
  const starts: RecordStart[] = [];
  for (const cut of cuts) {
    let s = sorted.indexOf(cut - 1);
    while (s < counts.length && counts[s]!.firstNewline === -1) s += 1;
    if (s >= counts.length) break; // no newline after this cut: no record starts there
    const offset = counts[s]!.firstNewline + 1;
    if (offset >= size) break;
    let before = 0;
    for (let j = 0; j < s; j += 1) before += counts[j]!.newlines;
    const start = { offset, line: before + 2 };
    if (starts.at(-1)?.offset !== offset) starts.push(start);
  }
  return {
    starts,
    quotes: counts.reduce((sum, c) => sum + c.quotes, 0),
    bytesRead: counts.reduce((sum, c) => sum + c.bytesRead, 0),
  };
}

/**
 * Record starts of a CSV file by scanning it from the start with the reader's own
 * quote rules ({@link CsvRecordBoundaries}), so every cut is a record start the reader
 * agrees with, even when quoted fields hold newlines. Stops after the last cut.
 */
async function csvStarts(
  store: ObjectStore,
  key: PinnedKey,
  size: number,
  wanted: readonly number[],
  maxHeaderBytes: number,
): Promise<{ starts: RecordStart[]; header: string; bytesRead: number }> {
  const cuts = [...new Set(wanted.filter((w) => w > 0 && w < size))].sort((a, b) => a - b);
  const scanner = new CsvRecordBoundaries(true);
  const starts: RecordStart[] = [];
  const headerParts: Buffer[] = [];
  let headerBytes = 0;
  let inHeader = true;
  let position = 0;
  let line = 1;
  let recordStart = 0;
  let recordLine = 1;
  let next = 0;
  let bytesRead = 0;
  const take = (start: number, line: number): void => {
    while (next < cuts.length && start >= cuts[next]!) {
      if (start < size && starts.at(-1)?.offset !== start) starts.push({ offset: start, line });
      next += 1;
    }
  };
  reading: for await (const chunk of pinnedRead(store, key, 0)) {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    bytesRead += buf.length;
    let from = 0;
    while (from < buf.length) {
      const lf = scanner.nextRecordEnd(buf, from);
      const stop = lf === -1 ? buf.length : lf;
      if (inHeader && headerBytes < maxHeaderBytes) {
        const piece = buf.subarray(from, Math.min(stop, from + maxHeaderBytes - headerBytes));
        headerParts.push(piece);
        headerBytes += piece.length;
      }
      let at = buf.indexOf(LF, from);
      while (at !== -1 && at < stop) {
        line += 1;
        at = buf.indexOf(LF, at + 1);
      }
      position += stop - from;
      if (lf === -1) break;
      position += 1;
      line += 1;
      from = lf + 1;
      inHeader = false;
      recordStart = position;
      recordLine = line;
      take(recordStart, recordLine);
      if (next >= cuts.length) break reading;
    }
  }
  return { starts, header: headerText(Buffer.concat(headerParts)), bytesRead };
}

/**
 * Finds, for each wanted cut offset, the first record start at or after it and that
 * record's 1-based line number, so units start exactly on a record and records without
 * an id still get the contract's `<sourceKey>:<line>` id in a unit that starts mid-file.
 *
 * JSONL (and CSV without a single quote character) are cut at line starts, counted in
 * parallel ranged reads. A CSV with quotes is scanned from the start by the reader's
 * own quote rules, because a newline inside a quoted field is not a record boundary and
 * only the bytes before a cut can tell: that scan is sequential and proves every cut.
 */
export async function findRecordStarts(
  store: ObjectStore,
  file: {
    readonly key: string;
    readonly size: number;
    readonly format: 'jsonl' | 'csv';
    /** The version planning pinned: every read names it. */
    readonly version?: string;
  },
  wanted: readonly number[],
  options: RecordStartsOptions = {},
): Promise<RecordStartsResult> {
  const maxHeaderBytes = options.maxHeaderBytes ?? 1024 * 1024;
  if (file.format === 'jsonl') {
    const { starts, bytesRead } = await lineStarts(store, file, file.size, wanted, options, false);
    return { starts, method: 'parallel-lines', bytesRead };
  }
  if (!options.maybeQuoted) {
    const lines = await lineStarts(store, file, file.size, wanted, options, true);
    const header = await firstLineOf(store, file, file.size, maxHeaderBytes);
    if (lines.quotes === 0 && !header.text.includes('"')) {
      return {
        starts: lines.starts,
        csvHeader: header.text,
        method: 'parallel-lines',
        bytesRead: lines.bytesRead + header.read,
      };
    }
    const scanned = await csvStarts(store, file, file.size, wanted, maxHeaderBytes);
    return {
      starts: scanned.starts,
      csvHeader: scanned.header,
      method: 'csv-scan',
      bytesRead: lines.bytesRead + header.read + scanned.bytesRead,
    };
  }
  const scanned = await csvStarts(store, file, file.size, wanted, maxHeaderBytes);
  return {
    starts: scanned.starts,
    csvHeader: scanned.header,
    method: 'csv-scan',
    bytesRead: scanned.bytesRead,
  };
}
