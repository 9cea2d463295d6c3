import { z } from 'zod';
import { InvalidMessage, parseMessage } from './parse-message.ts';

/**
 * An S3 event notification as S3 sends it to SQS (event structure version 2.x). Only
 * the fields Sluice reads are checked; AWS adds fields over time, so others are allowed.
 */
const s3EventRecordSchema = z.object({
  eventSource: z.literal('aws:s3'),
  eventName: z.string().min(1),
  s3: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({ key: z.string().min(1) }),
  }),
});

const s3NotificationSchema = z.union([
  z.object({ Records: z.array(s3EventRecordSchema).min(1) }),
  // S3 sends this once when notifications are configured on the bucket.
  z.object({ Event: z.literal('s3:TestEvent'), Service: z.literal('Amazon S3') }),
]);

/** One object named by a notification, its key decoded. */
export interface NotifiedObject {
  readonly bucket: string;
  readonly key: string;
  /** `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`, ... */
  readonly eventName: string;
}

export type IngestNotification =
  | { readonly kind: 'test-event' }
  | { readonly kind: 'objects'; readonly objects: readonly NotifiedObject[] };

/**
 * S3 notifications carry object keys URL-encoded the way HTML forms are: a space is `+`,
 * a literal `+` is `%2B`, and other bytes are %-escaped UTF-8.
 *
 * @throws InvalidMessage for a malformed escape
 */
export function decodeS3Key(encoded: string): string {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch (error) {
    throw new InvalidMessage(`S3 notification: object key ${JSON.stringify(encoded)} is not URL-encoded`, {
      cause: error,
    });
  }
}

/**
 * Reads the body of an ingest queue message: the objects an S3 notification names, or
 * the test event S3 sends when notifications are set up.
 *
 * @throws InvalidMessage when the body is not an S3 notification
 */
export function parseS3Notification(body: string): IngestNotification {
  const parsed = parseMessage(body, s3NotificationSchema, 'S3 notification');
  if ('Event' in parsed) return { kind: 'test-event' };
  return {
    kind: 'objects',
    objects: parsed.Records.map((record) => ({
      bucket: record.s3.bucket.name,
      key: decodeS3Key(record.s3.object.key),
      eventName: record.eventName,
    })),
  };
}
