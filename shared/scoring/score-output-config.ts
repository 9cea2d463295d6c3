import { z } from 'zod';
import { TABLE_COLUMNS } from '../output/parquet-tables.ts';

/**
 * `explain`: reason codes per scored row (docs/reason-codes.md). The worker computes them
 * with TreeSHAP from the XGBoost JSON model it scores with, so only `model.hosting:
 * in-worker` can have them (see {@link scoreOutputIssue}).
 */
export const explainSchema = z.strictObject({
  /** The input columns of largest |contribution| kept per row, in the `reasons` column. */
  topK: z.number().int().min(1).max(100),
});

/** Types a pass-through column can be written as (Parquet and the Glue catalog alike). */
export const PASS_THROUGH_TYPES = ['string', 'double', 'bigint', 'boolean'] as const;
export type PassThroughType = (typeof PASS_THROUGH_TYPES)[number];

/**
 * One `output.passThrough` entry: an input column name (written as `string`: text as
 * read, other JSON values as their JSON text), or `{ column, type }` to keep a number or
 * a flag typed in the table.
 */
const passThroughEntrySchema = z.union([
  z.string().min(1),
  z.strictObject({ column: z.string().min(1), type: z.enum(PASS_THROUGH_TYPES).default('string') }),
]);

/** A pass-through column as the writer and the catalog see it. */
export interface PassThroughColumn {
  readonly column: string;
  readonly type: PassThroughType;
}

/** The `output` key of a score pipeline. */
export const scoresOutputSchema = z
  .strictObject({
    table: z.literal('scores').default('scores'),
    /**
     * Input columns copied into `scores`, one table column each, named as in the input
     * (like SageMaker Batch Transform's `JoinSource: Input`). @default none
     */
    passThrough: z
      .array(passThroughEntrySchema)
      .default([])
      .transform((entries): PassThroughColumn[] =>
        entries.map((e) => (typeof e === 'string' ? { column: e, type: 'string' } : e)),
      ),
  })
  .prefault({});

/** Column names a pass-through column may not take: the table's own and its partition keys. */
const RESERVED_COLUMNS: ReadonlySet<string> = new Set([
  ...TABLE_COLUMNS.scores.map((c) => c.name),
  'pipeline',
  'run_date',
]);

interface ScoreOutputKeys {
  readonly model: { readonly hosting: string };
  readonly explain?: { readonly topK: number } | undefined;
  readonly output: { readonly passThrough: readonly PassThroughColumn[] };
}

/**
 * What is wrong with a score pipeline's `explain` and `output.passThrough`, as the key
 * path and one line, or undefined. Used as the config schema's refinement.
 */
export function scoreOutputIssue(config: ScoreOutputKeys): { path: string[]; message: string } | undefined {
  if (config.explain && config.model.hosting !== 'in-worker') {
    return {
      path: ['explain', 'topK'],
      message: `reason codes need model.hosting "in-worker" (this pipeline has "${config.model.hosting}"): the worker computes them from the XGBoost model file it scores with, and an endpoint (SageMaker's XGBoost container, serverless or instance) returns no contributions; set model.hosting to in-worker or remove explain`,
    };
  }
  const seen = new Set<string>();
  for (const [i, { column }] of config.output.passThrough.entries()) {
    if (RESERVED_COLUMNS.has(column))
      return {
        path: ['output', 'passThrough', String(i)],
        message: `"${column}" is a column of the scores table already; pass through another column or rename it in the input`,
      };
    if (seen.has(column))
      return { path: ['output', 'passThrough', String(i)], message: `"${column}" is listed twice` };
    seen.add(column);
  }
  return undefined;
}
