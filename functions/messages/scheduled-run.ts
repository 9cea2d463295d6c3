import { z } from 'zod';

/**
 * What an EventBridge Scheduler schedule sends to the ingest queue (or a person passes to
 * plan directly): `{"kind":"scheduled-run","pipeline":"docs","prefix":"datasets/docs/",
 * "scheduledTime":"2026-12-07T02:00:00Z"}`. `scheduledTime` is the schedule's
 * `<aws.scheduler.scheduled-time>`: with it the run id is derived from the tick, so a retry
 * finds the same run; without it (an invocation by hand) every invocation is a new run.
 */
export const scheduledRunEventSchema = z.object({
  kind: z.literal('scheduled-run'),
  pipeline: z.string().min(1),
  prefix: z.string().min(1),
  scheduledTime: z
    .string()
    .refine(
      (value) => !Number.isNaN(Date.parse(value)),
      'must be an ISO 8601 time such as 2026-12-07T02:00:00Z',
    )
    .optional(),
  /** The schedule's ARN (`<aws.scheduler.schedule-arn>`), for the logs. */
  schedule: z.string().optional(),
});

export type ScheduledRunEvent = z.infer<typeof scheduledRunEventSchema>;

/** Whether a parsed queue message is meant as a scheduled run (then it must validate as one). */
export function isScheduledRunMessage(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && (raw as { kind?: unknown }).kind === 'scheduled-run';
}
