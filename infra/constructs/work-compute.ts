import type { Duration } from 'aws-cdk-lib';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { SluiceFunction } from './sluice-function.ts';

/** How `WorkCompute` is sized: by the compute pool's `workers` settings (`deploymentSettings(...).workCompute`). */
export interface WorkComputeSizing {
  readonly timeout: Duration;
  readonly memoryMiB: number;
  /** Its event source's `maxConcurrency`: the largest `workers.maxConcurrency` of the compute pool. */
  readonly maxConcurrency: number;
}

export interface WorkComputeProps extends WorkComputeSizing {
  /** The work function's entry (`functions/work.ts`): both work functions run the same handler. */
  readonly entry: string;
  /** The compute queue (`Queues.workCompute.queue`). */
  readonly queue: sqs.IQueue;
  readonly environment: Readonly<Record<string, string>>;
  readonly serviceName: string;
  readonly bundledFiles: Readonly<Record<string, string>>;
}

/**
 * compute queue -> `WorkCompute` (issue 14): the second work function of a stack whose
 * pipelines split into two work pools (`workPoolsOf`). It runs the units of the compute
 * pool (score `in-worker`, recommend), which do the work in the worker and may need much
 * more memory than the endpoint pool's, whose workers mostly wait on a GPU and so stay
 * small on `Work`. Same handler as `Work`, its own size, its own event source.
 *
 * Its mapping's `maxConcurrency` is the compute pool's largest `workers.maxConcurrency` and
 * stays there: these workers call no endpoint, so plan and the capacity sweeper do not scale
 * it with endpoint copies (no `grantWorkerScaling`, no event source id in any environment).
 * Its permissions are granted by `Functions`, from the compute pool's pipelines.
 */
export function addWorkCompute(scope: Construct, props: WorkComputeProps): SluiceFunction {
  const fn = new SluiceFunction(scope, 'WorkCompute', {
    entry: props.entry,
    description:
      'Sluice work (compute pool): scores in the worker or recommends for one work unit and writes its Parquet parts',
    timeout: props.timeout,
    memorySize: props.memoryMiB,
    environment: props.environment,
    serviceName: props.serviceName,
    bundledFiles: props.bundledFiles,
  });
  fn.function.addEventSource(
    new SqsEventSource(props.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
      maxConcurrency: props.maxConcurrency,
    }),
  );
  return fn;
}
