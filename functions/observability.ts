import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

/** Where a handler reports what it did: structured logs and CloudWatch EMF metrics. */
export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** The deployed functions; each logs its name as the persistent `step` key. */
export type Step = 'plan' | 'work' | 'finalize' | 'dead-letter';

/** Every function that logs: the steps of a run, and the capacity sweeper beside them. */
export type ObservedFunction = Step | 'capacity-sweeper';

/**
 * The Powertools logger and metrics of one step. Service name and namespace come from
 * `POWERTOOLS_SERVICE_NAME` / `POWERTOOLS_METRICS_NAMESPACE` (set by infra) when present;
 * neither constructor reads anything that can fail, so this is safe at import time.
 * Metrics carry only the `service` dimension Powertools adds (the service name), so
 * infra alarms on `<namespace>/<metric>` with `service=<service name>`, whatever the step.
 */
export function createObservability(step: ObservedFunction): Observability {
  const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? 'sluice';
  const logger = new Logger({ serviceName, persistentKeys: { step } });
  const metrics = new Metrics({
    serviceName,
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Sluice',
    // Its own warnings (an invocation that counted nothing) as structured log lines, not bare text.
    logger,
  });
  return { logger, metrics };
}
