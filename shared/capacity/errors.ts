import { SluiceError } from '../errors/errors.ts';

/**
 * The capacity control plane failed (component missing, access denied, throttled past
 * the SDK's retries, ...). Plan logs it and goes on (the sweeper tries again each
 * minute); the sweeper reports it per component and goes on with the others.
 */
export class CapacityControlError extends SluiceError {
  constructor(
    readonly component: string,
    message: string,
    /** True where a later try may succeed (throttling, 5xx, network). */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The work event source's concurrency could not be read or set (mapping missing, access
 * denied, throttled past the SDK's retries, ...). Plan logs it and goes on; the sweeper
 * reports it and tries again each minute.
 */
export class WorkerConcurrencyError extends SluiceError {
  constructor(
    message: string,
    /** True where a later try may succeed (throttling, 5xx, network). */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
