import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { TokenCounter } from '../embedding/token-counter.ts';
import { parseCsvRecord } from '../readers/csv.ts';
import { decodeUtf8, stripBom } from '../readers/record-rules.ts';
import { documentCost } from './sample-cost.ts';

/** A record priced by the sampler: its bytes without the newline, and its length with it. */
export interface PricedRecord {
  readonly bytes: Buffer;
  readonly length: number;
}

/**
 * Prices one record in every `sampleEvery` bytes of a re-staged stream, and keeps the
 * tokens per byte measured over the whole file so far (a part's own few priced records
 * would be noisy); until the first is priced, the planner's sample stands.
 */
export class RestageSampler {
  private sampledTokens = 0;
  private sampledBytes = 0;
  /** Bytes since the last priced record; starts full so that the first record is priced. */
  private sinceSample: number;
  /** The record being priced, piece by piece; undefined while no record is. */
  private priced: Buffer[] | undefined = [];
  private pricedBytes = 0;

  constructor(
    private readonly sampleEvery: number,
    private readonly maxRecordBytes: number,
    private readonly fallbackTokensPerByte: number,
  ) {
    this.sinceSample = sampleEvery;
  }

  /** Tokens per decompressed byte so far. */
  get tokensPerByte(): number {
    return this.sampledBytes > 0 ? this.sampledTokens / this.sampledBytes : this.fallbackTokensPerByte;
  }

  /** Keeps a piece of the record being read when it is priced (no more than the record limit). */
  collect(piece: Buffer): void {
    if (this.priced && this.pricedBytes <= this.maxRecordBytes) {
      this.priced.push(piece);
      this.pricedBytes += piece.length;
    }
  }

  /** The record being read is over the limit: it is not priced. */
  drop(): void {
    this.priced = undefined;
  }

  /** Prices the record after an oversized one. */
  restart(): void {
    this.sinceSample = this.sampleEvery;
    this.priced = [];
    this.pricedBytes = 0;
  }

  /**
   * A record ended with `piece`: returns it when it was being priced, and decides whether
   * the next one is.
   */
  endRecord(piece: Buffer): PricedRecord | undefined {
    let record: PricedRecord | undefined;
    if (this.priced) {
      const bytes = Buffer.concat(this.priced).subarray(0, Math.max(0, this.pricedBytes - 1));
      record = { bytes, length: this.pricedBytes };
      this.priced = undefined;
      this.sinceSample = 0;
    }
    this.sinceSample += piece.length;
    if (this.sinceSample >= this.sampleEvery) {
      this.priced = [];
      this.pricedBytes = 0;
    }
    return record;
  }

  /** Counts a priced record's tokens toward the file's ratio. */
  add(tokens: number, length: number): void {
    this.sampledTokens += tokens;
    this.sampledBytes += length;
  }
}

/**
 * Estimated tokens of one record's text field (0 for a record the worker would reject):
 * a JSONL object's field, or a CSV row's column named by the header.
 */
export function recordTokens(
  record: Buffer,
  format: 'jsonl' | 'csv',
  headerFields: readonly string[] | undefined,
  config: PipelineConfig,
  counter: TokenCounter,
): number {
  const bytes = record.at(-1) === 0x0d ? record.subarray(0, -1) : record;
  const text = decodeUtf8(bytes);
  if (text === undefined || bytes.length > config.input.maxRecordBytes) return 0;
  const body = stripBom(text);
  if (format === 'jsonl') {
    try {
      const value = (JSON.parse(body) as Record<string, unknown> | null)?.[config.input.textField];
      return typeof value === 'string' ? documentCost(value, counter, config) : 0;
    } catch {
      return 0;
    }
  }
  const values = parseCsvRecord(body.replace(/\r\n/g, '\n'));
  const index = headerFields?.indexOf(config.input.textField) ?? -1;
  const value = index >= 0 && values?.length === headerFields?.length ? values?.[index] : undefined;
  return value === undefined ? 0 : documentCost(value, counter, config);
}
