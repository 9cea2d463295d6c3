import type { Logger } from '@aws-lambda-powertools/logger';
import { describeError } from '../../shared/errors/errors.ts';

/**
 * What a handler factory takes: its dependencies, or a function that builds them on
 * the first invocation (the deployed handlers, whose environment is only read then).
 */
export type DepsProvider<T extends object> = T | (() => T);

/** The dependencies; a build failure (an invalid environment) is logged as one line and rethrown. */
export function resolveDeps<T extends object>(deps: DepsProvider<T>, logger: Logger): T {
  if (typeof deps !== 'function') return deps;
  try {
    return deps();
  } catch (error) {
    logger.error('cannot start: fix the function configuration', { error: describeError(error) });
    throw error;
  }
}
