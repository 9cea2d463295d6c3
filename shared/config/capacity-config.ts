import { z } from 'zod';

/**
 * Run-scoped capacity of an instance endpoint (issue 14): the model is a SageMaker
 * inference component on an endpoint whose managed instance scaling allows 0 instances.
 * A run takes a lease on copies when it is planned and gives it back when it finalizes;
 * the last lease released scales the component to 0 copies after `cooldownSeconds`.
 */
export const capacitySchema = z
  .strictObject({
    /**
     * `run-scoped`: copies exist only while runs hold leases (plus the cooldown).
     * `always-on`: `minCopies` copies stay up between runs (a run may still add copies).
     */
    mode: z.enum(['run-scoped', 'always-on']).default('run-scoped'),
    /** Copies kept between runs in `always-on` mode (ignored when run-scoped: 0). */
    minCopies: z.number().int().min(1).max(64).default(1),
    /** Most copies one run (or all overlapping runs together) may hold. */
    maxCopies: z.number().int().min(1).max(64).default(4),
    /**
     * Work one copy does per second, in the run's cost unit (padded tokens for embedding,
     * rows for scoring): a run asks for ceil(estimated work / (this x targetRunSeconds))
     * copies, at least 1 and at most maxCopies. Replace with a measured figure.
     */
    workPerSecondPerCopy: z.number().positive().optional(),
    /** How long a run should keep its copies busy; sizes the copies it asks for. */
    targetRunSeconds: z.number().int().min(60).max(86_400).default(1800),
    /** After the last lease is released, copies may stay this long for a following run (see `cooldown`). */
    cooldownSeconds: z.number().int().min(0).max(86_400).default(300),
    /**
     * When the cooldown is kept (docs/capacity.md, "Cooldown"). `auto`: only when a run is
     * likely to follow: a schedule of a pipeline on the same component ticks within
     * `cooldownSeconds` of the release, or the last release was followed by a new lease
     * within `cooldownSeconds` (back-to-back runs); otherwise finalize scales to 0 at
     * release. `always`: every last release keeps the copies for `cooldownSeconds`.
     */
    cooldown: z.enum(['auto', 'always']).default('auto'),
    /**
     * How long work may wait for capacity to come up ("warming") before the run fails
     * with a clear reason. SageMaker needs minutes to start a GPU instance and a model.
     */
    warmupLimitSeconds: z.number().int().min(60).max(7200).default(1800),
    /** A lease whose run has shown no progress for this long is treated as leaked. */
    leaseStaleSeconds: z.number().int().min(300).max(86_400).default(3600),
    /**
     * Workers per copy (deployed): the work event source's `MaximumConcurrency` follows the
     * copies live leases hold, this many workers each (docs/capacity.md, "Workers follow the
     * copies"). One worker keeps a GPU copy fed (bench/results/pipeline-share.json `sizing`).
     * @default 1 (`DEFAULT_WORKERS_PER_COPY`, shared/capacity/workers.ts)
     */
    workersPerCopy: z.number().int().min(1).max(64).optional(),
  })
  // A run waiting for capacity shows no progress: a lease stale sooner would be released while it warms.
  .refine((c) => c.leaseStaleSeconds > c.warmupLimitSeconds, {
    message: 'leaseStaleSeconds must exceed warmupLimitSeconds',
    path: ['leaseStaleSeconds'],
  })
  .prefault({});
