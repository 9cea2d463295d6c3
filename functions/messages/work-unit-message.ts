import { z } from 'zod';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { parseMessage } from './parse-message.ts';
import { runIdSchema } from './run-id.ts';

const formatSchema = z.enum(['jsonl', 'csv', 'text', 'parquet']);
const compressionSchema = z.enum(['none', 'gzip']);
const byteOffset = z.number().int().nonnegative();

/**
 * A unit descriptor as plan sends it (`JSON.stringify(unit)`). Fields a newer planner
 * may add are dropped rather than refused, so a deployment can roll forward while
 * messages of the old version are still queued.
 */
const workUnitSchema = z
  .object({
    runId: runIdSchema,
    unitId: z.string().min(1),
    pipeline: z.string().min(1),
    sourceKey: z.string().min(1),
    /** The source's version planning pinned (S3 VersionId or ETag); the worker reads only it. */
    sourceVersion: z.string().min(1).optional(),
    byteStart: byteOffset,
    byteEnd: byteOffset,
    firstLine: z.number().int().positive(),
    format: formatSchema,
    compression: compressionSchema,
    csvHeader: z.string().optional(),
    packed: z.array(
      z.object({
        key: z.string().min(1),
        size: byteOffset,
        format: formatSchema,
        compression: compressionSchema,
        version: z.string().min(1).optional(),
      }),
    ),
    estCost: z.number().nonnegative(),
    /** A range of a big gzip source re-staged uncompressed by the planner. */
    staged: z
      .object({
        key: z.string().min(1),
        offset: byteOffset,
        fault: z.object({ reason: z.string(), line: z.number().int().nonnegative(), byteOffset }).optional(),
        /** Records over the size limit the planner did not copy: reported as rejects. */
        rejects: z
          .array(
            z.object({
              reason: z.string(),
              line: z.number().int().nonnegative(),
              byteOffset,
              excerpt: z.string(),
            }),
          )
          .optional(),
      })
      .optional(),
    /** `fit`: the first pass of a scoring pipeline; absent: the pipeline's own work. */
    task: z.literal('fit').optional(),
    /** The stage of the run the unit belongs to (shared/jobs); absent: the kind's last, or `task`. */
    stage: z.string().min(1).optional(),
    /** Sent back to wait for a cold endpoint: since when (epoch ms), and how often so far. */
    warmingSince: z.number().int().nonnegative().optional(),
    warmingDeferrals: z.number().int().nonnegative().optional(),
    /** Score pipelines: the model version planning pinned; in-worker scoring reads exactly it. */
    modelPin: z.object({ version: z.string().min(1), etag: z.string().min(1).optional() }).optional(),
  })
  .refine((unit) => unit.byteEnd >= unit.byteStart, {
    message: 'byteEnd must not be before byteStart',
    path: ['byteEnd'],
  });

/** @throws InvalidMessage when the body is not a unit descriptor */
export function parseWorkUnitMessage(body: string): WorkUnit {
  return parseMessage(body, workUnitSchema, 'work unit message');
}
