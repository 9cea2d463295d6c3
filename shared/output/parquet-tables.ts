import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { EmbeddingRow, RejectRow, RunSummary, ScoreRow } from '../domain/types.ts';
import type { BetaPrior } from '../scoring/aggregates/beta-prior.ts';
import type { SegmentStats } from '../scoring/aggregates/segment-aggregates.ts';
import { type FloatList, type GroupColumn, writeRowGroup } from './float-list-column.ts';

type Physical = 'string' | 'int32' | 'int64' | 'double' | 'boolean' | 'float-list';

export interface ColumnDef {
  readonly name: string;
  readonly type: Physical;
  readonly required?: boolean;
}

/**
 * Column layouts of the Parquet tables. `pipeline` and `run_date` are not stored in
 * the files: they are Hive partition keys in the object key, for Athena and DuckDB alike.
 */
export const TABLE_COLUMNS = {
  embeddings: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'doc_id', type: 'string', required: true },
    { name: 'chunk_id', type: 'string', required: true },
    { name: 'chunk_index', type: 'int32', required: true },
    { name: 'char_start', type: 'int32', required: true },
    { name: 'char_end', type: 'int32', required: true },
    { name: 'token_count', type: 'int32', required: true },
    { name: 'text_sha256', type: 'string', required: true },
    { name: 'model', type: 'string', required: true },
    { name: 'embedding', type: 'float-list', required: true },
    { name: 'source_key', type: 'string', required: true },
    { name: 'chunk_text', type: 'string' },
    { name: 'metadata', type: 'string' },
  ],
  rejects: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'source_key', type: 'string', required: true },
    { name: 'byte_offset', type: 'int64', required: true },
    { name: 'line', type: 'int64', required: true },
    { name: 'reason', type: 'string', required: true },
    { name: 'excerpt', type: 'string' },
  ],
  scores: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'record_id', type: 'string', required: true },
    { name: 'score', type: 'double', required: true },
    { name: 'model', type: 'string', required: true },
    /** Which version of the model object scored the row (ScoreRow.model_version); null where unknown. */
    { name: 'model_version', type: 'string' },
    { name: 'source_key', type: 'string', required: true },
    { name: 'line', type: 'int64', required: true },
    /** Every model output as a JSON array when the model has several (multi-class). */
    { name: 'outputs', type: 'string' },
    { name: 'metadata', type: 'string' },
    /**
     * Reason codes (`explain.topK`, docs/reason-codes.md): a JSON array of `{"feature",
     * "contribution", "value"}`, largest |contribution| first; null without `explain`.
     */
    { name: 'reasons', type: 'string' },
  ],
  /**
   * Generate pipelines (the Generations contract): one row per record answered. `attempts`
   * is the calls this run made for it: 0 when carried from the prompt cache, with 0 tokens.
   */
  generations: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'record_id', type: 'string', required: true },
    { name: 'prompt_sha256', type: 'string', required: true },
    { name: 'model', type: 'string', required: true },
    { name: 'output', type: 'string', required: true },
    /** The parsed answer as JSON text; null without `output.jsonSchema`. */
    { name: 'output_json', type: 'string' },
    { name: 'finish_reason', type: 'string' },
    { name: 'prompt_tokens', type: 'int64', required: true },
    { name: 'completion_tokens', type: 'int64', required: true },
    { name: 'attempts', type: 'int32', required: true },
    { name: 'source_key', type: 'string', required: true },
    { name: 'line', type: 'int64', required: true },
    { name: 'metadata', type: 'string' },
  ],
  /** Recommend pipelines (the Recommendations contract): a user's top N, one row per rank. */
  recommendations: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'user_id', type: 'string', required: true },
    { name: 'rank', type: 'int32', required: true },
    { name: 'item_id', type: 'string', required: true },
    { name: 'score', type: 'double', required: true },
    /** `cf`, or `popular` for popularity fill-in. */
    { name: 'source', type: 'string', required: true },
    /** Members of the user's neighbourhood holding the item; 0 for fill-in. */
    { name: 'neighbours', type: 'int32', required: true },
  ],
  segment_stats: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'segment_key', type: 'string', required: true },
    /** Segment column -> value, as a JSON object. */
    { name: 'segment', type: 'string', required: true },
    { name: 'count', type: 'int64', required: true },
    { name: 'score_mean', type: 'double' },
    { name: 'score_p50', type: 'double' },
    /** Every configured quantile, as a JSON object (`{"p10": .., "p50": ..}`). */
    { name: 'score_quantiles', type: 'string' },
    { name: 'trials', type: 'int64', required: true },
    { name: 'positives', type: 'int64', required: true },
    { name: 'rate_mle', type: 'double' },
    { name: 'rate_map', type: 'double', required: true },
    { name: 'prior_alpha', type: 'double', required: true },
    { name: 'prior_beta', type: 'double', required: true },
    { name: 'prior_method', type: 'string', required: true },
  ],
  /**
   * Incremental embed runs: one row per source the run diffed with its last manifest (or
   * could not), so the current state of every source is a query: the latest `read` or
   * `deleted` row per `source_key` by `started_at`.
   */
  sources: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'source_key', type: 'string', required: true },
    /** `read` (all of it, this run), `deleted` (gone from the bucket), `skipped` (not compared: see `reason`). */
    { name: 'status', type: 'string', required: true },
    /** When the run started: orders runs over the same source. */
    { name: 'started_at', type: 'string', required: true },
    { name: 'documents', type: 'int64', required: true },
    { name: 'chunks', type: 'int64', required: true },
    { name: 'removed_documents', type: 'int64', required: true },
    { name: 'removed_chunks', type: 'int64', required: true },
    { name: 'reason', type: 'string' },
  ],
  runs: [
    { name: 'run_id', type: 'string', required: true },
    { name: 'status', type: 'string', required: true },
    { name: 'trigger', type: 'string', required: true },
    { name: 'started_at', type: 'string', required: true },
    { name: 'finished_at', type: 'string', required: true },
    { name: 'records', type: 'int64', required: true },
    { name: 'rejected', type: 'int64', required: true },
    { name: 'units', type: 'int64', required: true },
    { name: 'failed_units', type: 'int64', required: true },
    { name: 'chunks', type: 'int64', required: true },
    { name: 'embedded', type: 'int64', required: true },
    { name: 'skipped_unchanged', type: 'int64', required: true },
    { name: 'removed_chunks', type: 'int64', required: true },
    { name: 'scored', type: 'int64', required: true },
    { name: 'real_tokens', type: 'int64', required: true },
    { name: 'padded_tokens', type: 'int64', required: true },
    { name: 'endpoint_calls', type: 'int64', required: true },
    { name: 'throttled', type: 'int64', required: true },
    { name: 'retries', type: 'int64', required: true },
    /** The run's cost in USD (summary `cost`, shared/cost); null when it could not be priced. */
    { name: 'cost_usd', type: 'double' },
    { name: 'cost_endpoint_usd', type: 'double' },
    { name: 'cost_lambda_usd', type: 'double' },
    { name: 'cost_requests_usd', type: 'double' },
    { name: 'cost_storage_usd', type: 'double' },
    /** `estimate` (a local run priced as if deployed) or `measured`. */
    { name: 'cost_kind', type: 'string' },
  ],
} as const satisfies Record<string, readonly ColumnDef[]>;

type SchemaElement = Record<string, unknown>;

/** The Parquet schema of a table's columns (exported for tests and benchmarks). */
export function schemaOf(columns: readonly ColumnDef[]): SchemaElement[] {
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }];
  for (const col of columns) {
    const repetition_type = col.required ? 'REQUIRED' : 'OPTIONAL';
    switch (col.type) {
      case 'string':
        schema.push({ name: col.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type });
        break;
      case 'int32':
        schema.push({ name: col.name, type: 'INT32', repetition_type });
        break;
      case 'int64':
        schema.push({ name: col.name, type: 'INT64', repetition_type });
        break;
      case 'double':
        schema.push({ name: col.name, type: 'DOUBLE', repetition_type });
        break;
      case 'boolean':
        schema.push({ name: col.name, type: 'BOOLEAN', repetition_type });
        break;
      case 'float-list':
        // The three-level LIST layout of the Parquet spec, which Athena and DuckDB read as array<float>.
        schema.push({ name: col.name, repetition_type, num_children: 1, converted_type: 'LIST' });
        schema.push({ name: 'list', repetition_type: 'REPEATED', num_children: 1 });
        schema.push({ name: 'element', type: 'FLOAT', repetition_type: 'REQUIRED' });
        break;
    }
  }
  return schema;
}

/**
 * Rows per row group: embeddings use small groups (about 3 MB of 384-dimension vectors
 * and text each), so a writer holds one group's rows and shredded values at a time
 * rather than a whole unit's; the narrow tables keep large groups.
 */
const EMBEDDING_ROW_GROUP = 2048;
const DEFAULT_ROW_GROUP = 100_000;
/** Scores: narrow rows, but written as they are scored, so groups of this many are encoded at a time. */
const SCORE_ROW_GROUP = 16_384;

/**
 * Columns whose values are (nearly) all distinct or long: a dictionary would not pay and
 * min/max statistics of free text help no query, so both are skipped (they cost as much
 * as the rest of the encoding together).
 */
const PLAIN_COLUMNS: ReadonlySet<string> = new Set([
  'chunk_id',
  'text_sha256',
  'chunk_text',
  'metadata',
  'record_id',
  'excerpt',
  'outputs',
  'reasons',
]);

/**
 * Writes one Parquet file row group by row group: rows are added as they are produced and
 * encoded whenever a full group is waiting, so only the encoded bytes of the finished
 * groups and one group of rows are held.
 */
export class ParquetPartWriter<Row> {
  private readonly bytes = new ByteWriter();
  private readonly writer: ParquetWriter;
  private pending: Row[] = [];
  private written = 0;

  constructor(
    private readonly columns: readonly ColumnDef[],
    private readonly toRecord: (row: Row) => Record<string, unknown>,
    private readonly rowGroupSize = DEFAULT_ROW_GROUP,
    /** Key-value pairs for the footer. @default none */
    keyValueMetadata?: readonly { readonly key: string; readonly value: string }[],
  ) {
    // hyparquet-writer's types describe its schema elements loosely; the layout above follows the Parquet spec.
    this.writer = new ParquetWriter({
      writer: this.bytes,
      schema: schemaOf(columns) as never,
      ...(keyValueMetadata ? { kvMetadata: keyValueMetadata.map((kv) => ({ ...kv })) } : {}),
    });
  }

  /** Rows added so far. */
  get rows(): number {
    return this.written + this.pending.length;
  }

  add(rows: Iterable<Row>): void {
    for (const row of rows) {
      this.pending.push(row);
      if (this.pending.length >= this.rowGroupSize) this.writeGroup();
    }
  }

  /** Encoded bytes not yet taken by {@link takeBytes}. */
  get pendingBytes(): number {
    return this.bytes.index;
  }

  /**
   * Hands over the bytes encoded since the last take (a copy) and forgets them, so a
   * caller can stream the part out group by group instead of holding it whole. The
   * writer keeps counting file offsets, so the footer still points at the right places.
   */
  takeBytes(): Uint8Array {
    const bytes = this.bytes.getBytes().slice();
    this.bytes.index = 0;
    return bytes;
  }

  /**
   * The rest of the file: every group written and the footer, from where the last
   * {@link takeBytes} stopped (the whole file when none was taken). The writer is done
   * after this. A view over the writer's own buffer, not a copy (a part can be tens of
   * MB): its `.buffer` may be longer than the file, so use the view, never the buffer behind it.
   */
  finish(): Uint8Array {
    if (this.pending.length > 0) this.writeGroup();
    this.writer.finish();
    return this.bytes.getBytes();
  }

  private writeGroup(): void {
    const rows = this.pending.map(this.toRecord);
    this.written += rows.length;
    this.pending = [];
    // list<float> columns go to a specialised encoder that copies the Float32Arrays' bytes;
    // the rest through hyparquet-writer's own column encoder.
    const columns = this.columns.map((col): GroupColumn => {
      if (col.type === 'float-list') {
        return { name: col.name, floatLists: rows.map((row) => row[col.name] as FloatList) };
      }
      return {
        name: col.name,
        data: rows.map((row) => {
          const value = row[col.name];
          if (value === undefined || value === null) return null;
          return col.type === 'int64' ? BigInt(value as number | bigint) : value;
        }),
        ...(PLAIN_COLUMNS.has(col.name) ? { encoding: 'PLAIN' as const, statistics: false } : {}),
      };
    });
    // Synchronous: a ByteWriter has no flush to wait for.
    writeRowGroup(this.writer, columns, rows.length);
  }
}

function encode(
  columns: readonly ColumnDef[],
  rows: readonly Record<string, unknown>[],
  rowGroupSize = DEFAULT_ROW_GROUP,
): Uint8Array {
  const writer = new ParquetPartWriter(columns, (row: Record<string, unknown>) => row, rowGroupSize);
  writer.add(rows);
  return writer.finish();
}

function embeddingRecord(runId: string) {
  // A document's chunks share one metadata object and arrive together: serialise it once.
  let lastMetadata: EmbeddingRow['metadata'] | undefined;
  let lastJson: string | null = null;
  return (row: EmbeddingRow): Record<string, unknown> => {
    if (row.metadata !== lastMetadata) {
      lastMetadata = row.metadata;
      lastJson = Object.keys(row.metadata).length ? JSON.stringify(row.metadata) : null;
    }
    return { ...row, run_id: runId, metadata: lastJson };
  };
}

/** A unit's `embeddings` part, written group by group as its chunks are embedded. */
export function embeddingsPartWriter(runId: string): ParquetPartWriter<EmbeddingRow> {
  return new ParquetPartWriter(TABLE_COLUMNS.embeddings, embeddingRecord(runId), EMBEDDING_ROW_GROUP);
}

/**
 * A writer of a table's rows as read back from one of its parts (every column present,
 * `run_id` included), with the part writers' row groups: for rewriting a part.
 */
export function rewrittenPartWriter(
  table: 'embeddings' | 'scores' | 'generations',
  keyValueMetadata: readonly { readonly key: string; readonly value: string }[],
  /** The part's columns beyond the table's own (a score pipeline's `output.passThrough`). @default none */
  extraColumns: readonly ColumnDef[] = [],
): ParquetPartWriter<Record<string, unknown>> {
  return new ParquetPartWriter(
    [...TABLE_COLUMNS[table], ...extraColumns],
    (row) => row,
    // Generations are answers of a few hundred bytes to a few KB: row groups as small as embeddings'.
    table === 'scores' ? SCORE_ROW_GROUP : EMBEDDING_ROW_GROUP,
    keyValueMetadata,
  );
}

/** A `rejects` part written group by group. */
export function rejectsPartWriter(runId: string): ParquetPartWriter<RejectRow> {
  return new ParquetPartWriter(TABLE_COLUMNS.rejects, (row) => ({ ...row, run_id: runId }));
}

export function embeddingsParquet(runId: string, rows: readonly EmbeddingRow[]): Uint8Array {
  const writer = embeddingsPartWriter(runId);
  writer.add(rows);
  return writer.finish();
}

export function rejectsParquet(runId: string, rows: readonly RejectRow[]): Uint8Array {
  return encode(
    TABLE_COLUMNS.rejects,
    rows.map((row) => ({ ...row, run_id: runId })),
  );
}

export function runsParquet(summary: RunSummary): Uint8Array {
  const { counts, stats } = summary;
  return encode(TABLE_COLUMNS.runs, [
    {
      run_id: summary.runId,
      status: summary.status,
      trigger: summary.trigger,
      started_at: summary.startedAt,
      finished_at: summary.finishedAt,
      records: counts.records,
      rejected: counts.rejected,
      units: counts.units,
      failed_units: counts.failedUnits,
      chunks: counts.chunks,
      embedded: counts.embedded,
      skipped_unchanged: counts.skippedUnchanged,
      removed_chunks: counts.removedChunks,
      scored: counts.scored,
      real_tokens: stats.realTokens,
      padded_tokens: stats.paddedTokens,
      endpoint_calls: stats.endpointCalls,
      throttled: stats.throttled,
      retries: stats.retries,
      cost_usd: summary.cost?.total ?? null,
      cost_endpoint_usd: summary.cost?.endpoint ?? null,
      cost_lambda_usd: summary.cost?.lambda ?? null,
      cost_requests_usd: summary.cost?.requests ?? null,
      cost_storage_usd: summary.cost?.storage ?? null,
      cost_kind: summary.cost === undefined ? null : summary.cost.estimate ? 'estimate' : 'measured',
    },
  ]);
}

function scoreRecord(runId: string) {
  return (row: ScoreRow): Record<string, unknown> => {
    const { passThrough, ...rest } = row;
    return {
      // Pass-through columns first, so the table's own columns always win (config refuses clashes).
      ...passThrough,
      ...rest,
      run_id: runId,
      outputs: row.outputs && row.outputs.length > 1 ? JSON.stringify(row.outputs) : null,
      metadata: Object.keys(row.metadata).length ? JSON.stringify(row.metadata) : null,
      reasons: row.reasons ?? null,
    };
  };
}

/** Parquet column type of each `output.passThrough` type (Glue: string, double, bigint, boolean). */
const PASS_THROUGH_PHYSICAL: Readonly<Record<string, Physical>> = {
  string: 'string',
  double: 'double',
  bigint: 'int64',
  boolean: 'boolean',
};

/** The `scores` columns a score pipeline's `output.passThrough` adds, after the table's own. */
export function passThroughColumnsOf(
  passThrough: readonly { readonly column: string; readonly type: string }[],
): ColumnDef[] {
  return passThrough.map(({ column, type }) => {
    const physical = PASS_THROUGH_PHYSICAL[type];
    if (!physical) throw new Error(`no Parquet type for pass-through type ${type}`);
    return { name: column, type: physical };
  });
}

/** Parquet physical types of flat columns, back to the writer's types (for rewriting a part). */
const PHYSICAL_OF_PARQUET: Readonly<Record<string, Physical>> = {
  BYTE_ARRAY: 'string',
  INT32: 'int32',
  INT64: 'int64',
  DOUBLE: 'double',
  BOOLEAN: 'boolean',
};

/**
 * The flat columns of a part's Parquet schema that the table does not declare (a score
 * pipeline's pass-through columns), so a rewrite keeps them.
 */
export function extraColumnsOfPart(
  table: 'embeddings' | 'scores' | 'generations',
  schema: readonly { readonly name: string; readonly type?: string; readonly num_children?: number }[],
): ColumnDef[] {
  const known = new Set<string>(TABLE_COLUMNS[table].map((c) => c.name));
  const extra: ColumnDef[] = [];
  // Depth-first layout: the root's children in order, each followed by its own subtree.
  let at = 1;
  const skipSubtree = (): void => {
    const children = schema[at]?.num_children ?? 0;
    at += 1;
    for (let c = 0; c < children; c += 1) skipSubtree();
  };
  while (at < schema.length) {
    const el = schema[at]!;
    if (!el.num_children && !known.has(el.name)) {
      const type = el.type === undefined ? undefined : PHYSICAL_OF_PARQUET[el.type];
      if (!type)
        throw new Error(`part column ${el.name} has Parquet type ${el.type}, which no writer here uses`);
      extra.push({ name: el.name, type });
    }
    skipSubtree();
  }
  return extra;
}

/**
 * A unit's `scores` part, written group by group as its rows are scored, with the
 * pipeline's pass-through columns after the table's own. @default no pass-through columns
 */
export function scoresPartWriter(
  runId: string,
  passThrough: readonly { readonly column: string; readonly type: string }[] = [],
): ParquetPartWriter<ScoreRow> {
  return new ParquetPartWriter(
    [...TABLE_COLUMNS.scores, ...passThroughColumnsOf(passThrough)],
    scoreRecord(runId),
    SCORE_ROW_GROUP,
  );
}

export function scoresParquet(runId: string, rows: readonly ScoreRow[]): Uint8Array {
  const writer = scoresPartWriter(runId);
  writer.add(rows);
  return writer.finish();
}

export function segmentStatsParquet(
  runId: string,
  prior: BetaPrior,
  segments: readonly SegmentStats[],
): Uint8Array {
  return encode(
    TABLE_COLUMNS.segment_stats,
    segments.map((s) => ({
      run_id: runId,
      segment_key: s.key,
      segment: JSON.stringify(s.segment),
      count: s.count,
      score_mean: s.scoreMean,
      score_p50: s.scoreQuantiles.p50 ?? null,
      score_quantiles: Object.keys(s.scoreQuantiles).length ? JSON.stringify(s.scoreQuantiles) : null,
      trials: s.trials,
      positives: s.positives,
      rate_mle: s.rateMle,
      rate_map: s.rateMap,
      prior_alpha: prior.alpha,
      prior_beta: prior.beta,
      prior_method: prior.method,
    })),
  );
}

/** One row of the `sources` table. */
export interface SourceRow {
  readonly source_key: string;
  readonly status: 'read' | 'deleted' | 'skipped';
  readonly documents: number;
  readonly chunks: number;
  readonly removed_documents: number;
  readonly removed_chunks: number;
  readonly reason: string | null;
}

/** A run's `sources` part (one per run, written by finalize). */
export function sourcesParquet(runId: string, startedAt: string, rows: readonly SourceRow[]): Uint8Array {
  return encode(
    TABLE_COLUMNS.sources,
    rows.map((row) => ({ run_id: runId, started_at: startedAt, ...row })),
  );
}
