import { ParquetPartWriter, TABLE_COLUMNS } from '../../output/parquet-tables.ts';
import type { GenerationRow } from './generate-record.ts';

/** The `generations` table's columns (shared/output/parquet-tables.ts holds every table's). */
export const GENERATIONS_COLUMNS = TABLE_COLUMNS.generations;

/** A `generations` row with the line it was read from. */
export type GenerationTableRow = GenerationRow & { readonly line: number };

/** Rows per row group: answers are a few hundred bytes to a few KB each. */
const GENERATION_ROW_GROUP = 2_000;

/** A unit's `generations` part, written group by group as its records are answered. */
export function generationsPartWriter(runId: string): ParquetPartWriter<GenerationTableRow> {
  return new ParquetPartWriter(
    GENERATIONS_COLUMNS,
    (row: GenerationTableRow): Record<string, unknown> => ({
      run_id: runId,
      record_id: row.record_id,
      prompt_sha256: row.prompt_sha256,
      model: row.model,
      output: row.output,
      output_json: row.output_json,
      finish_reason: row.finish_reason,
      prompt_tokens: row.prompt_tokens,
      completion_tokens: row.completion_tokens,
      attempts: row.attempts,
      source_key: row.source_key,
      line: row.line,
      metadata: Object.keys(row.metadata).length ? JSON.stringify(row.metadata) : null,
    }),
    GENERATION_ROW_GROUP,
  );
}
