import {
  type CapacityConfig,
  type PipelineConfig,
  scoringEndpointNameOf,
} from '../config/pipeline-config.ts';
import type { ScheduleSpec } from './next-tick.ts';

/**
 * The SageMaker inference component that hosts an endpoint's model (issue 14). One per
 * endpoint; its name is derived from the endpoint's so the stack, the workers and the
 * capacity sweeper agree without passing it around. SageMaker names allow 63 characters.
 */
export function inferenceComponentNameOf(endpointName: string): string {
  return `${endpointName.slice(0, 56)}-model`;
}

/** What a pipeline's endpoint capacity is, or undefined where no instance endpoint is called. */
export interface PipelineCapacity {
  readonly endpointName: string;
  readonly componentName: string;
  readonly instanceType: string;
  readonly capacity: CapacityConfig;
  /** The pipeline's schedule, if it has one: a tick soon after a release keeps the cooldown. */
  readonly schedule?: ScheduleSpec;
}

/**
 * The run-scoped capacity a pipeline uses: embed pipelines always (TEI on GPU instances),
 * generate pipelines calling SageMaker (an LLM on GPU instances; none with `endpoint.url`,
 * an OpenAI-compatible server Sluice does not run), score pipelines only with
 * `model.hosting: instance` (in-worker has no endpoint, serverless scales by itself).
 */
export function pipelineCapacityOf(config: PipelineConfig): PipelineCapacity | undefined {
  const schedule = config.schedule && {
    schedule: { expression: config.schedule.expression, timezone: config.schedule.timezone },
  };
  if (config.kind === 'embed' || (config.kind === 'generate' && config.endpoint.url === undefined)) {
    const { name, instanceType, capacity } = config.endpoint;
    return {
      endpointName: name,
      componentName: inferenceComponentNameOf(name),
      instanceType,
      capacity,
      ...schedule,
    };
  }
  if (config.kind !== 'score' || config.model.hosting !== 'instance') return undefined;
  const { instanceType, capacity } = config.model;
  const endpointName = scoringEndpointNameOf(config);
  return {
    endpointName,
    componentName: inferenceComponentNameOf(endpointName),
    instanceType,
    capacity,
    ...schedule,
  };
}

/** The schedules of every pipeline whose capacity is `component` (pipelines may share an endpoint). */
export function schedulesOf(capacities: readonly PipelineCapacity[], component: string): ScheduleSpec[] {
  return capacities.flatMap((c) => (c.componentName === component && c.schedule ? [c.schedule] : []));
}
