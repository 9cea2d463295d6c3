import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { EndpointHosting } from './run-cost.ts';

/**
 * Where a pipeline's model runs, as the cost model prices it: embed pipelines call their
 * TEI endpoint on instances; score pipelines by `model.hosting` (in-worker has no
 * endpoint, serverless bills by memory and inference time, instance by instance-seconds);
 * generate pipelines call their LLM endpoint on GPU instances (`endpoint.instanceType`,
 * default ml.g5.2xlarge), also when a local run sends its requests to `--endpoint-url`: a
 * local run is priced as if deployed. Recommend pipelines call no model.
 */
export function endpointHostingOf(config: PipelineConfig | undefined): EndpointHosting | undefined {
  if (config?.kind === 'embed') return { kind: 'instance', instanceType: config.endpoint.instanceType };
  if (config?.kind === 'generate') return { kind: 'instance', instanceType: config.endpoint.instanceType };
  if (config?.kind !== 'score') return undefined;
  switch (config.model.hosting) {
    case 'in-worker':
      return { kind: 'in-worker' };
    case 'serverless':
      return { kind: 'serverless', memoryMiB: config.model.serverless.memoryMiB };
    case 'instance':
      return { kind: 'instance', instanceType: config.model.instanceType };
  }
}
