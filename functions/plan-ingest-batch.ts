import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSRecord } from 'aws-lambda';
import {
  IngestedKeys,
  type IngestOutcome,
  type IngestRules,
  routeNotifiedObject,
} from '../shared/plan/plan-ingest.ts';
import { validateMessage } from './messages/parse-message.ts';
import { parseS3Notification } from './messages/s3-notification.ts';
import {
  isScheduledRunMessage,
  type ScheduledRunEvent,
  scheduledRunEventSchema,
} from './messages/scheduled-run.ts';

/** The parts of one ingest message: the pipelines it asks to plan, a scheduled run, or why it cannot be read. */
export type IngestEntry =
  | { readonly pipelines: ReadonlySet<string> }
  | { readonly scheduled: ScheduledRunEvent }
  | { readonly invalid: unknown };

/** One SQS batch read whole: each message's entry, the keys by pipeline, and each pipeline's plan once started. */
export interface IngestBatch {
  readonly entries: ReadonlyMap<string, IngestEntry>;
  readonly keys: IngestedKeys;
  /**
   * Started by the first message that needs it and awaited by all of them, so a
   * pipeline's failure fails exactly the messages that named it.
   */
  readonly plans: Map<string, Promise<IngestOutcome>>;
}

/** Reads every message first, so that all objects of a pipeline in this batch make one run. */
export function readIngestBatch(logger: Logger, d: IngestRules, records: readonly SQSRecord[]): IngestBatch {
  const entries = new Map<string, IngestEntry>();
  const keys = new IngestedKeys();
  for (const record of records) entries.set(record.messageId, ingestEntryOf(logger, d, record, keys));
  return { entries, keys, plans: new Map() };
}

/** One message's entry; the objects of a notification are added to `keys` by pipeline. */
function ingestEntryOf(logger: Logger, d: IngestRules, record: SQSRecord, keys: IngestedKeys): IngestEntry {
  const scheduled = scheduledRunOf(record.body);
  if (scheduled !== undefined) return scheduled;
  let notification: ReturnType<typeof parseS3Notification>;
  try {
    notification = parseS3Notification(record.body);
  } catch (error) {
    return { invalid: error };
  }
  const pipelines = new Set<string>();
  if (notification.kind === 'test-event') {
    logger.info('S3 test event: notifications are set up; nothing to plan', { messageId: record.messageId });
    return { pipelines };
  }
  for (const object of notification.objects) {
    const route = routeNotifiedObject(d, object);
    if ('skip' in route) {
      logger.warn(`skipped ${object.key}: ${route.skip}`, {
        messageId: record.messageId,
        bucket: object.bucket,
        key: object.key,
        eventName: object.eventName,
      });
      continue;
    }
    pipelines.add(route.pipeline);
    keys.add(route.pipeline, object.key, route.removal);
  }
  return { pipelines };
}

/**
 * A scheduled run sent through the ingest queue, or an InvalidMessage entry when the body
 * says `"kind":"scheduled-run"` but is not one; undefined for anything else (S3 notifications).
 */
export function scheduledRunOf(body: string): IngestEntry | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isScheduledRunMessage(raw)) return undefined;
  try {
    return { scheduled: validateMessage(raw, scheduledRunEventSchema, 'scheduled run message') };
  } catch (error) {
    return { invalid: error };
  }
}
