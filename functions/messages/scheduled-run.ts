import { z } from 'zod';

/**
 * What an EventBridge Scheduler schedule passes to plan as its input:
 * `{"kind":"scheduled-run","pipeline":"docs","prefix":"datasets/docs/"}`.
 */
export const scheduledRunEventSchema = z.object({
  kind: z.literal('scheduled-run'),
  pipeline: z.string().min(1),
  prefix: z.string().min(1),
});

export type ScheduledRunEvent = z.infer<typeof scheduledRunEventSchema>;
