/**
 * Error hierarchy shared by every context. Each subclass sets `name`, keeps `cause`
 * and carries the context a user needs to act; `message` is one line.
 */
export class SluiceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Pipeline configuration or command-line usage is wrong; the user must fix it (exit 2). */
export class ConfigError extends SluiceError {}

/** An input path, object or record cannot be read; other inputs are unaffected. */
export class InputError extends SluiceError {}

/**
 * An input object is no longer the version a unit was planned on (overwritten, shortened
 * or deleted since): the unit must fail with this reason rather than read other records.
 * Retrying cannot help; a new run reads the new content.
 */
export class ObjectChanged extends InputError {
  constructor(
    readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A read reached past the end of an object: never read as a short or empty body. */
export class ObjectRangeError extends InputError {}

/** The endpoint refused a request because of load (HTTP 429/503, SageMaker ThrottlingException). */
export class EndpointThrottled extends SluiceError {}

/**
 * The endpoint has no capacity yet: an inference component with no copies (scaled to zero,
 * or copies still starting) or a serverless endpoint still provisioning. Not overload and
 * not a failure: the work waits for capacity (issue 14) without spending the retry budget
 * or lowering the adaptive limit. See docs/capacity.md, "What a cold endpoint answers".
 */
export class EndpointWarming extends SluiceError {
  constructor(
    readonly endpointName: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The endpoint failed for a reason a retry may fix (5xx, network, timeout). */
export class EndpointUnavailable extends SluiceError {}

/** The model rejected the request itself (4xx other than throttling); retrying the same payload cannot help. */
export class ModelError extends SluiceError {
  constructor(
    message: string,
    readonly originalStatus: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A state transition was refused because another delivery already made it (conditional write lost). */
export class TransitionConflict extends SluiceError {}

/** One line for a user: the message of the error without a stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n')[0] ?? error.name;
  return String(error);
}

/**
 * A DynamoDB batch call (BatchWriteItem, BatchGetItem) still left items unprocessed after
 * every resend, or failed outright (throttled past the SDK's own retries) part way through.
 * `left` counts the items not written or read; `cause` is the SDK error when one was thrown.
 */
export class BatchIncomplete extends SluiceError {
  constructor(
    message: string,
    readonly left: number,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
