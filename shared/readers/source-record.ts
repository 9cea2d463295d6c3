import type { Compression, InputFormat, StagedPart } from '../domain/types.ts';

/** What a reader yields for each input record: a document or a reject with its reason. */
export type SourceRecord =
  | {
      readonly kind: 'doc';
      readonly id: string;
      readonly text: string;
      readonly metadata: Record<string, string | null>;
      readonly line: number;
      readonly byteOffset: number;
    }
  | {
      readonly kind: 'row';
      readonly id: string;
      /** Every field of the record as read (CSV values are strings). */
      readonly values: Readonly<Record<string, unknown>>;
      readonly metadata: Record<string, string | null>;
      readonly line: number;
      readonly byteOffset: number;
    }
  | {
      readonly kind: 'reject';
      readonly reason: string;
      readonly line: number;
      readonly byteOffset: number;
      readonly excerpt: string;
    };

export type RejectRecord = Extract<SourceRecord, { readonly kind: 'reject' }>;

export interface SourceSlice {
  /** The source object: record ids, lines and rejects refer to it. */
  readonly key: string;
  readonly format: InputFormat;
  readonly compression: Compression;
  /**
   * Records that START in `[byteStart, byteEnd)` belong to the slice (Parquet: row groups
   * that start there). For gzip, offsets are in the decompressed stream.
   */
  readonly byteStart: number;
  /** Exclusive; for a whole object, its size. */
  readonly byteEnd: number;
  readonly firstLine: number;
  readonly csvHeader?: string;
  /** Read this re-staged, uncompressed part instead of the source (see {@link StagedPart}). */
  readonly staged?: StagedPart;
  /** The version of the source the slice was planned on: read only it (see `WorkUnit.sourceVersion`). */
  readonly version?: string;
}

export interface RecordFields {
  readonly idField: string;
  readonly textField: string;
  readonly metadataFields: readonly string[];
  readonly maxRecordBytes: number;
  /** See `input.maxDecompressionRatio`. @default 100 */
  readonly maxDecompressionRatio?: number;
  /** `document` (id + text, for embedding; the default) or `row` (every field, for scoring). */
  readonly shape?: 'document' | 'row';
}
