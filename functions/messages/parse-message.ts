import type { z } from 'zod';
import { SluiceError } from '../../shared/errors/errors.ts';

/**
 * A queue message or event that no retry can make valid. It still fails its record, so
 * SQS keeps it and dead-letters it after the last delivery, where a person can read it.
 */
export class InvalidMessage extends SluiceError {}

/** Characters of a bad body copied into the log, enough to recognise it. */
const EXCERPT_CHARS = 300;

export function excerptOf(body: string): string {
  return body.length <= EXCERPT_CHARS ? body : `${body.slice(0, EXCERPT_CHARS)}…`;
}

/**
 * Parses a JSON message body and validates it against a schema; on failure throws an
 * InvalidMessage whose one line names what was expected and the first field at fault.
 */
export function parseMessage<T extends z.ZodType>(body: string, schema: T, what: string): z.output<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (error) {
    throw new InvalidMessage(`${what}: body is not JSON (${(error as Error).message})`, { cause: error });
  }
  return validateMessage(raw, schema, what);
}

/** Validates an already parsed value; see {@link parseMessage}. */
export function validateMessage<T extends z.ZodType>(raw: unknown, schema: T, what: string): z.output<T> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  throw new InvalidMessage(`${what}: ${path}: ${issue.message}`, { cause: result.error });
}
