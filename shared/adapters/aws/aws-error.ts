/**
 * Reading AWS SDK v3 errors without importing each service's exception classes: the
 * adapters classify by `name` and HTTP status, which is what the SDK, aws-sdk-client-mock
 * and local emulators (fauxqs, dynalite) all agree on.
 */
export interface AwsErrorShape {
  readonly name?: string;
  readonly code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

function asShape(error: unknown): AwsErrorShape | undefined {
  return typeof error === 'object' && error !== null ? (error as AwsErrorShape) : undefined;
}

export function awsErrorName(error: unknown): string | undefined {
  return asShape(error)?.name;
}

export function httpStatusOf(error: unknown): number | undefined {
  return asShape(error)?.$metadata?.httpStatusCode;
}

export function isAwsError(error: unknown, ...names: string[]): boolean {
  const name = awsErrorName(error);
  return name !== undefined && names.includes(name);
}

/** Node socket errors that a retry may fix (the SDK's own retry strategy uses the same list). */
const NETWORK_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);
const TIMEOUT_ERROR_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'AbortError',
]);

/** True for errors raised before an HTTP response arrived: resets, refused connections, timeouts. */
export function isNetworkError(error: unknown): boolean {
  const shape = asShape(error);
  if (shape === undefined) return false;
  if (shape.name !== undefined && TIMEOUT_ERROR_NAMES.has(shape.name)) return true;
  return shape.code !== undefined && NETWORK_ERROR_CODES.has(shape.code);
}
