import { gunzipSync, constants as zlibConstants } from 'node:zlib';
import { parquetReadObjects } from 'hyparquet';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { Compression, InputFormat } from '../domain/types.ts';
import { chunkText } from '../embedding/chunker.ts';
import type { TokenCounter } from '../embedding/token-counter.ts';
import type { ObjectInfo, ObjectStore } from '../ports/object-store.ts';
import { DECOMPRESSION_GRACE_BYTES } from '../readers/bounded-gunzip.ts';
import { CsvRecordBoundaries, parseCsvRecord } from '../readers/csv.ts';
import { objectAsyncBuffer, type ParquetRowGroup, readParquetLayout } from '../readers/parquet.ts';
import { decodeUtf8, stripBom } from '../readers/record-rules.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';

/** A file as the planner sees it before estimating: where it is, how to read it. */
export interface ClassifiedFile extends ObjectInfo {
  readonly format: InputFormat;
  readonly compression: Compression;
}

/** How an estimate was made, shown in the run manifest. */
export type EstimateMethod =
  /** The whole file was read and its records chunked. */
  | 'whole'
  /** The first window and a few seeded random windows were read. */
  | 'sampled'
  /** A gzip file's first compressed window was decompressed and read. */
  | 'gzip-prefix'
  /** A Parquet file's footer plus the first rows of its first row group. */
  | 'parquet-sample'
  /** A small file priced by the tokens per byte of sampled small files of its kind. */
  | 'group-ratio'
  /** Nothing readable was found: bytes / `planning.charsPerToken`. */
  | 'fallback'
  /** The file is certain to be rejected whole (a text document over the size limit). */
  | 'rejected';

export interface CostEstimate {
  /** Estimated tokens the worker will embed (chunk tokens, overlap included). */
  readonly estCost: number;
  readonly method: EstimateMethod;
  /** Estimated tokens per byte of the decompressed source. */
  readonly tokensPerByte: number;
  /** Bytes the estimate read. */
  readonly sampledBytes: number;
  /** A CSV sample held a quote character, so a quoted field may hold a newline. */
  readonly maybeQuoted?: boolean;
  /**
   * Records the file is estimated to hold (for an embed pipeline its documents, one chunk
   * index entry each): counted when it was read whole, a Parquet file's rows from its
   * footer, a text file one document; otherwise its sample's records per byte over its
   * (decompressed) size, not rounded (a small file priced by its kind's ratio may hold a
   * fraction). Absent when nothing readable was found (`fallback`). The token estimate
   * does not use it.
   */
  readonly estRecords?: number;
  /** `estRecords` is a count, not extrapolated from a sample. */
  readonly recordsCounted?: boolean;
  /** Parquet: the row groups and the estimated cost of each. */
  readonly parquet?: { readonly rowGroups: readonly ParquetRowGroup[]; readonly costs: readonly number[] };
}

export interface SamplingOptions {
  readonly counter: TokenCounter;
  /** Bytes per sample window. @default 64 KiB */
  readonly windowBytes?: number;
  /** Windows per big file, the first included. @default 4 */
  readonly windows?: number;
  /** Small files of one kind read whole to price the others. @default 64 */
  readonly smallFilesSampled?: number;
  /** Reads in flight. @default 16 */
  readonly concurrency?: number;
}

const LF = 0x0a;
const QUOTE = 0x22;
const PARQUET_SAMPLE_ROWS = 256;

interface Tally {
  tokens: number;
  bytes: number;
  /** Records the tallied bytes held (decoded records; lines over the limit are rejects, not records). */
  records: number;
  quotes: boolean;
}

/**
 * Work one sampled record costs: for embedding, its text's chunk tokens (a record
 * without text costs nothing); for scoring, one unit per feature, whatever its fields.
 */
function recordCost(text: unknown, counter: TokenCounter, config: PipelineConfig): number {
  if (config.kind === 'score') return config.featureSpec.features.length;
  if (config.kind === 'recommend') return 1;
  // A generate record's cost is dominated by what it may generate, whatever its fields.
  if (config.kind === 'generate') return config.generation.maxTokens;
  return typeof text === 'string' ? documentCost(text, counter, config) : 0;
}

/** Tokens the worker will count for one document: its chunks' tokens, overlap included. */
export function documentCost(text: string, counter: TokenCounter, config: PipelineConfig): number {
  // A scoring pipeline's work is per row, whatever its text: one row costs its feature count.
  if (config.kind === 'recommend') return 1;
  if (config.kind === 'generate') return config.generation.maxTokens;
  if (config.kind !== 'embed') return config.featureSpec.features.length;
  let tokens = 0;
  for (const chunk of chunkText(text, counter, config.chunking)) tokens += chunk.tokens;
  return tokens;
}

/** A small deterministic generator, seeded by the key, so a re-plan samples the same windows. */
function seededRandom(key: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  let state = h >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function readWindow(store: ObjectStore, file: ObjectInfo, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const pinned = file.version === undefined ? {} : { version: file.version };
  for await (const chunk of store.readRange(file.key, start, end, pinned))
    parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  return Buffer.concat(parts);
}

/** Adds the complete JSONL records of a window to the tally. */
function tallyJsonl(
  window: Buffer,
  atStart: boolean,
  atEnd: boolean,
  tally: Tally,
  config: PipelineConfig,
  counter: TokenCounter,
): void {
  let from = 0;
  if (!atStart) {
    const first = window.indexOf(LF);
    if (first === -1) return;
    from = first + 1;
  }
  while (from < window.length) {
    const lf = window.indexOf(LF, from);
    if (lf === -1 && !atEnd) break;
    const stop = lf === -1 ? window.length : lf;
    tally.bytes += stop - from + 1;
    // A line over the limit is never decoded: the worker rejects it unread.
    const text =
      stop - from <= config.input.maxRecordBytes ? decodeUtf8(window.subarray(from, stop)) : undefined;
    if (text !== undefined) {
      try {
        const record = JSON.parse(from === 0 ? stripBom(text) : text) as Record<string, unknown> | null;
        if (record !== null && typeof record === 'object') {
          tally.records += 1;
          tally.tokens += recordCost(record[config.input.textField], counter, config);
        }
      } catch {
        // A malformed line costs nothing to embed.
      }
    }
    from = stop + 1;
  }
}

/**
 * Adds the complete CSV records of a window to the tally. A window that starts mid-file
 * is read from its first newline as if a record started there; when that newline was in
 * a quoted field, rows come out with the wrong field count and are left out of the tally.
 */
function tallyCsv(
  window: Buffer,
  atStart: boolean,
  atEnd: boolean,
  header: { fields?: string[] },
  tally: Tally,
  config: PipelineConfig,
  counter: TokenCounter,
): void {
  if (window.includes(QUOTE)) tally.quotes = true;
  let from = 0;
  if (!atStart) {
    const first = window.indexOf(LF);
    if (first === -1) return;
    from = first + 1;
  }
  const scanner = new CsvRecordBoundaries(atStart);
  while (from < window.length) {
    const lf = scanner.nextRecordEnd(window, from);
    if (lf === -1 && !atEnd) break;
    const stop = lf === -1 ? window.length : lf;
    // The record's own CR before its newline is part of the terminator, as the reader reads it.
    const body = window.subarray(from, stop > from && window[stop - 1] === 0x0d ? stop - 1 : stop);
    const decoded = body.length <= config.input.maxRecordBytes ? decodeUtf8(body) : undefined;
    const values =
      decoded === undefined ? undefined : parseCsvRecord(stripBom(decoded).replace(/\r\n/g, '\n'));
    if (values && !header.fields && atStart) {
      header.fields = values;
      tally.bytes += stop - from + 1;
    } else if (values && header.fields && values.length === header.fields.length) {
      tally.bytes += stop - from + 1;
      const text = values[header.fields.indexOf(config.input.textField)];
      if (stop - from <= config.input.maxRecordBytes) {
        tally.records += 1;
        tally.tokens += recordCost(text, counter, config);
      }
    }
    from = stop + 1;
  }
}

function tallyWindow(
  format: InputFormat,
  window: Buffer,
  atStart: boolean,
  atEnd: boolean,
  header: { fields?: string[] },
  tally: Tally,
  config: PipelineConfig,
  counter: TokenCounter,
): void {
  if (format === 'jsonl') tallyJsonl(window, atStart, atEnd, tally, config, counter);
  else if (format === 'csv') tallyCsv(window, atStart, atEnd, header, tally, config, counter);
  else {
    tally.bytes += window.length;
    tally.records = 1; // a text file is one document, however many windows it is read in
    tally.tokens += documentCost(window.toString('utf8'), counter, config);
  }
}

interface Measured {
  readonly estimate: CostEstimate;
  /** Tokens per stored byte, for pricing small files of the same kind. */
  readonly perStoredByte: number;
}

function fallback(file: ClassifiedFile, config: PipelineConfig): CostEstimate {
  const expansion = file.compression === 'gzip' ? 4 : 1;
  return {
    estCost: Math.ceil((file.size * expansion) / config.planning.charsPerToken),
    method: 'fallback',
    tokensPerByte: 1 / config.planning.charsPerToken,
    sampledBytes: 0,
  };
}

async function measureParquet(
  store: ObjectStore,
  file: ClassifiedFile,
  config: PipelineConfig,
  counter: TokenCounter,
): Promise<CostEstimate> {
  const layout = await readParquetLayout(store, file.key, file.size, config.input.textField, file.version);
  const hasText = layout.columns.includes(config.input.textField);
  const first = layout.rowGroups.find((g) => g.rows > 0);
  let tokensPerTextByte = 0;
  // Every kind but embed costs per row whatever its text (recommend 1, score its features,
  // generate its max tokens): a row cost of 0 left a big file at cost 0, one unit.
  let tokensPerRow = config.kind === 'embed' ? 0 : recordCost(undefined, counter, config);
  if (config.kind === 'embed' && hasText && first) {
    const rows = await parquetReadObjects({
      file: objectAsyncBuffer(store, file.key, file.size, file.version),
      metadata: layout.metadata,
      columns: [config.input.textField],
      rowStart: first.firstRow,
      rowEnd: first.firstRow + Math.min(first.rows, PARQUET_SAMPLE_ROWS),
    });
    let tokens = 0;
    for (const row of rows) {
      const text = row[config.input.textField];
      if (typeof text === 'string') tokens += documentCost(text, counter, config);
    }
    tokensPerRow = rows.length > 0 ? tokens / rows.length : 0;
    if (first.textBytes > 0) tokensPerTextByte = tokensPerRow / (first.textBytes / first.rows);
  }
  const costs = layout.rowGroups.map((g) =>
    tokensPerTextByte > 0 ? g.textBytes * tokensPerTextByte : g.rows * tokensPerRow,
  );
  const estCost = costs.reduce((a, b) => a + b, 0);
  return {
    estCost: Math.round(estCost),
    method: 'parquet-sample',
    tokensPerByte: file.size > 0 ? estCost / file.size : 0,
    sampledBytes: 0,
    // The footer's row counts: exact, whatever the sample read.
    estRecords: layout.rowGroups.reduce((sum, g) => sum + g.rows, 0),
    recordsCounted: true,
    parquet: { rowGroups: layout.rowGroups, costs },
  };
}

/**
 * Decompresses a gzip file's first window; `complete` when that was the whole stream.
 * Output is capped by the decompression ratio limit (at most 32 MiB), so a bomb costs the
 * planner no more than the worker would read of it.
 */
function gunzipPrefix(
  prefix: Buffer,
  whole: boolean,
  maxRatio: number,
): { bytes: Buffer; complete: boolean } | undefined {
  const limit = Math.min(32 * 1024 * 1024, DECOMPRESSION_GRACE_BYTES + maxRatio * prefix.length);
  try {
    if (whole) return { bytes: gunzipSync(prefix, { maxOutputLength: limit }), complete: true };
  } catch {
    // Fall through: read what the stream gives before its fault or the limit.
  }
  for (let size = prefix.length; size >= 1024; size = Math.floor(size / 8)) {
    try {
      const bytes = gunzipSync(prefix.subarray(0, size), {
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
        maxOutputLength: limit,
      });
      return { bytes, complete: false };
    } catch {
      // Too large an expansion (or a fault): try a shorter prefix.
    }
  }
  return undefined;
}

/**
 * Estimates one file from what it reads of it: small files whole, big ones by a few
 * windows (the first, then seeded random ones), gzip by its first window decompressed,
 * Parquet by its footer and the first rows of its first row group.
 */
async function measureFile(
  store: ObjectStore,
  file: ClassifiedFile,
  config: PipelineConfig,
  options: SamplingOptions,
): Promise<Measured> {
  const windowBytes = options.windowBytes ?? 64 * 1024;
  const windows = options.windows ?? 4;
  if (file.size === 0)
    return {
      estimate: {
        estCost: 0,
        method: 'whole',
        tokensPerByte: 0,
        sampledBytes: 0,
        estRecords: 0,
        recordsCounted: true,
      },
      perStoredByte: 0,
    };
  if (file.format === 'parquet') {
    if (file.compression !== 'none') return rejected(0);
    const estimate = await measureParquet(store, file, config, options.counter);
    return { estimate, perStoredByte: estimate.tokensPerByte };
  }
  if (file.format === 'text' && file.compression === 'none' && file.size > config.input.maxRecordBytes)
    return rejected(0);
  const sample: FileSample = { store, file, config, counter: options.counter, windowBytes };
  if (file.compression === 'gzip') return measureGzipPrefix(sample);
  if (file.size <= windowBytes * windows) return measureWhole(sample);
  return measureWindows(sample, windows);
}

/** What a sample of one file reads with. */
interface FileSample {
  readonly store: ObjectStore;
  readonly file: ClassifiedFile;
  readonly config: PipelineConfig;
  readonly counter: TokenCounter;
  readonly windowBytes: number;
}

/** A file certain to be rejected whole: it costs nothing to work. */
function rejected(sampledBytes: number): Measured {
  return {
    estimate: {
      estCost: 0,
      method: 'rejected',
      tokensPerByte: 0,
      sampledBytes,
      estRecords: 0,
      recordsCounted: true,
    },
    perStoredByte: 0,
  };
}

/**
 * Records a file of `bytes` (decompressed) holds by its sample's records per byte; a text
 * file is one document whatever its size. None when the sample held no complete record.
 */
function recordsOf(
  file: ClassifiedFile,
  tally: Tally,
  bytes: number,
  counted: boolean,
): { estRecords?: number; recordsCounted?: boolean } {
  if (file.format === 'text') return { estRecords: 1, recordsCounted: true };
  if (counted) return { estRecords: tally.records, recordsCounted: true };
  if (tally.bytes === 0) return {};
  return { estRecords: (tally.records / tally.bytes) * bytes, recordsCounted: false };
}

/** For a CSV file: whether the sample held a quote (a quoted field may hold a newline). */
function quotesOf(file: ClassifiedFile, tally: Tally): { maybeQuoted?: boolean } {
  return file.format === 'csv' ? { maybeQuoted: tally.quotes } : {};
}

/**
 * A gzip file by its first window decompressed: whole when that was the whole stream, else
 * priced at the window's tokens per byte over the size the stream expands to (at most the
 * decompression ratio limit, where the worker stops reading).
 */
async function measureGzipPrefix(sample: FileSample): Promise<Measured> {
  const { store, file, config, counter, windowBytes } = sample;
  const whole = file.size <= windowBytes;
  const prefix = await readWindow(store, file, 0, Math.min(file.size, windowBytes));
  const out = gunzipPrefix(prefix, whole, config.input.maxDecompressionRatio);
  if (!out || out.bytes.length === 0) return { estimate: fallback(file, config), perStoredByte: 0 };
  const expansion = Math.min(out.bytes.length / prefix.length, config.input.maxDecompressionRatio);
  const decompressed = file.size * expansion;
  if (file.format === 'text' && decompressed > config.input.maxRecordBytes) return rejected(prefix.length);
  const tally: Tally = { tokens: 0, bytes: 0, records: 0, quotes: false };
  tallyWindow(file.format, out.bytes, true, out.complete, {}, tally, config, counter);
  const tokensPerByte = tally.bytes > 0 ? tally.tokens / tally.bytes : 1 / config.planning.charsPerToken;
  const estCost = out.complete ? tally.tokens : tokensPerByte * decompressed;
  return {
    estimate: {
      estCost: Math.round(estCost),
      method: out.complete ? 'whole' : 'gzip-prefix',
      tokensPerByte,
      sampledBytes: prefix.length,
      ...recordsOf(file, tally, decompressed, out.complete),
      ...quotesOf(file, tally),
    },
    perStoredByte: estCost / file.size,
  };
}

/** A file of a few windows or less, read whole. */
async function measureWhole(sample: FileSample): Promise<Measured> {
  const { store, file, config, counter } = sample;
  const body = await readWindow(store, file, 0, file.size);
  const tally: Tally = { tokens: 0, bytes: 0, records: 0, quotes: false };
  tallyWindow(file.format, body, true, true, {}, tally, config, counter);
  return {
    estimate: {
      estCost: tally.tokens,
      method: 'whole',
      tokensPerByte: tally.tokens / file.size,
      sampledBytes: file.size,
      ...recordsOf(file, tally, file.size, true),
      ...quotesOf(file, tally),
    },
    perStoredByte: tally.tokens / file.size,
  };
}

/**
 * Where the windows of a big file start, in order: the first at 0, the others at seeded
 * random offsets past it (the same file and size always give the same windows).
 */
export function windowStarts(file: ObjectInfo, windowBytes: number, windows: number): number[] {
  const random = seededRandom(`${file.key}\u0000${file.size}`);
  const starts = [0];
  const span = file.size - 2 * windowBytes;
  for (let i = 1; i < windows; i += 1) starts.push(windowBytes + Math.floor(random() * span));
  return starts.sort((a, b) => a - b);
}

/** A big file by a few windows, priced at their tokens per byte (a text document by its start alone). */
async function measureWindows(sample: FileSample, windows: number): Promise<Measured> {
  const { store, file, config, counter, windowBytes } = sample;
  const tally: Tally = { tokens: 0, bytes: 0, records: 0, quotes: false };
  const header: { fields?: string[] } = {};
  let sampledBytes = 0;
  for (const start of windowStarts(file, windowBytes, windows)) {
    const end = Math.min(file.size, start + windowBytes);
    const window = await readWindow(store, file, start, end);
    sampledBytes += window.length;
    if (file.format === 'text') {
      tallyWindow(file.format, window, true, false, header, tally, config, counter);
      break; // one document: its start tells its density
    }
    tallyWindow(file.format, window, start === 0, end === file.size, header, tally, config, counter);
  }
  if (tally.bytes === 0) return { estimate: fallback(file, config), perStoredByte: 0 };
  const tokensPerByte = tally.tokens / tally.bytes;
  return {
    estimate: {
      estCost: Math.round(tokensPerByte * file.size),
      method: 'sampled',
      tokensPerByte,
      sampledBytes,
      ...recordsOf(file, tally, file.size, false),
      ...quotesOf(file, tally),
    },
    perStoredByte: tokensPerByte,
  };
}

/** What the small files of one kind read whole held: their tokens and records per stored byte. */
interface KindRatio {
  tokens: number;
  bytes: number;
  records: number;
  /** Bytes of the files whose records were found (`records` is per these). */
  recordBytes: number;
}

/**
 * Estimates the work of every file from a sample, as tokens the worker will embed.
 * Files bigger than one window are measured on their own; files of one window or less
 * are many and alike, so up to `smallFilesSampled` of each kind (format and
 * compression, spread over the key order) are read whole and the rest are priced by
 * their tokens per byte. A sample that cannot be read leaves the file to the bytes-based
 * fallback: an estimate must never fail a plan (the worker reports a real read error).
 */
export async function estimateCosts(
  store: ObjectStore,
  files: readonly ClassifiedFile[],
  config: PipelineConfig,
  options: SamplingOptions,
): Promise<CostEstimate[]> {
  const windowBytes = options.windowBytes ?? 64 * 1024;
  const perKind = options.smallFilesSampled ?? 64;
  const estimates = new Array<CostEstimate | undefined>(files.length);
  const ratios = new Map<string, KindRatio>();
  const kindOf = (f: ClassifiedFile) => `${f.format}/${f.compression}`;

  const measured: number[] = [];
  const byKind = new Map<string, number[]>();
  files.forEach((file, i) => {
    if (file.size > windowBytes || file.format === 'parquet') measured.push(i);
    else byKind.set(kindOf(file), [...(byKind.get(kindOf(file)) ?? []), i]);
  });
  for (const indexes of byKind.values()) {
    const step = indexes.length / Math.min(perKind, indexes.length);
    for (let k = 0; k * step < indexes.length; k += 1) measured.push(indexes[Math.floor(k * step)]!);
  }

  await mapWithConcurrency(measured, options.concurrency ?? 16, async (i) => {
    const file = files[i]!;
    let result: Measured;
    try {
      result = await measureFile(store, file, config, options);
    } catch {
      result = { estimate: fallback(file, config), perStoredByte: 0 };
    }
    estimates[i] = result.estimate;
    if (file.size <= windowBytes && result.estimate.method !== 'fallback') {
      const ratio = ratios.get(kindOf(file)) ?? { tokens: 0, bytes: 0, records: 0, recordBytes: 0 };
      ratio.tokens += result.estimate.estCost;
      ratio.bytes += file.size;
      if (result.estimate.estRecords !== undefined) {
        ratio.records += result.estimate.estRecords;
        ratio.recordBytes += file.size;
      }
      ratios.set(kindOf(file), ratio);
    }
  });

  return files.map((file, i) => {
    const known = estimates[i];
    if (known) return known;
    const ratio = ratios.get(kindOf(file));
    if (!ratio || ratio.bytes === 0) return fallback(file, config);
    const perByte = ratio.tokens / ratio.bytes;
    return {
      estCost: Math.round(perByte * file.size),
      method: 'group-ratio',
      tokensPerByte: perByte,
      sampledBytes: 0,
      ...groupRecords(file, config, ratio),
    };
  });
}

/**
 * Records of a small file priced by its kind's ratio: the sampled files' records per
 * stored byte over its size; a text file one document (none when over the record limit,
 * which rejects it whole).
 */
function groupRecords(
  file: ClassifiedFile,
  config: PipelineConfig,
  ratio: KindRatio,
): { estRecords?: number; recordsCounted?: boolean } {
  if (file.format === 'text') {
    const over = file.compression === 'none' && file.size > config.input.maxRecordBytes;
    return { estRecords: over ? 0 : 1, recordsCounted: true };
  }
  if (ratio.recordBytes === 0) return {};
  return { estRecords: (ratio.records / ratio.recordBytes) * file.size, recordsCounted: false };
}
