import type { PipelineConfig } from '../shared/config/pipeline-config.ts';

/** The stack name the app deploys when context `sluice:stackName` names none. */
export const DEFAULT_STACK_NAME = 'Sluice';

/** CloudFormation's limit on a stack name, and so on what this derives names from. */
const MAX_STACK_NAME_LENGTH = 128;
/** Letters and digits, optionally joined by single hyphens, starting with a letter. */
const STACK_NAME = /^[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*$/;
/** SageMaker endpoint names: letters and digits, hyphens between them, at most 63 characters. */
const ENDPOINT_NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9])*$/;
const MAX_ENDPOINT_NAME_LENGTH = 63;

/**
 * The names a stack gives resources whose names are unique per account and region (or,
 * for the service name, that select its metrics), so that two stacks with different
 * names can share an account and region. All derive from `id`, the stack name in lower
 * case: `Sluice` -> `sluice` (the names every existing deployment has), `SluiceDev` ->
 * `sluicedev`, `Sluice-Dev` -> `sluice-dev` (Glue database `sluice_dev`).
 */
export interface DeploymentNames {
  readonly stackName: string;
  /** The stack name in lower case. */
  readonly id: string;
  /** Glue database of the results tables: `id` with `-` as `_` (Glue and Athena allow `[a-z0-9_]`). */
  readonly glueDatabase: string;
  /** Athena workgroup: `id`. */
  readonly workGroup: string;
  /** Powertools service name of every function, the `service` dimension its metrics and alarms carry: `id`. */
  readonly serviceName: string;
  /**
   * The SageMaker endpoint name (and so `/aws/sagemaker/Endpoints/<name>` log group) a
   * configured `endpoint.name` / `model.endpointName` deploys as: unchanged in the
   * stack whose `id` is `sluice`, `<id>-<configured>` in any other. Throws a one-line
   * error when that is longer than SageMaker allows.
   */
  endpointName(configured: string): string;
}

/**
 * The account-unique names of the stack named `stackName`; a pure function, so tests
 * and docs can name them without synthesizing. Throws a one-line error naming context
 * `sluice:stackName` when the stack name cannot produce valid names.
 */
export function deploymentNames(stackName: string): DeploymentNames {
  if (!STACK_NAME.test(stackName) || stackName.length > MAX_STACK_NAME_LENGTH) {
    throw new Error(
      `stack name ${JSON.stringify(stackName)} cannot name Sluice's Glue database, Athena workgroup and endpoints: ` +
        `use letters and digits, optionally joined by single hyphens, starting with a letter, at most ${MAX_STACK_NAME_LENGTH} characters (context sluice:stackName), e.g. SluiceDev`,
    );
  }
  const id = stackName.toLowerCase();
  const prefix = id === DEFAULT_STACK_NAME.toLowerCase() ? '' : `${id}-`;
  return {
    stackName,
    id,
    glueDatabase: id.replaceAll('-', '_'),
    workGroup: id,
    serviceName: id,
    endpointName(configured: string): string {
      const name = `${prefix}${configured}`;
      if (!ENDPOINT_NAME.test(name) || name.length > MAX_ENDPOINT_NAME_LENGTH) {
        throw new Error(
          `stack ${stackName} deploys endpoint ${configured} as ${name} (${name.length} characters), which SageMaker refuses (at most ${MAX_ENDPOINT_NAME_LENGTH} letters, digits and hyphens): use a shorter stack name (context sluice:stackName) or endpoint name`,
        );
      }
      return name;
    },
  };
}

/**
 * The configs as the stack deploys them: each endpoint name replaced by
 * `names.endpointName` of it, so the functions (which call endpoints by the name in the
 * pipelines file) call this stack's endpoints. The default stack's configs are returned
 * as they are, so its pipelines file does not change.
 */
export function deployedPipelines(
  pipelines: readonly PipelineConfig[],
  names: DeploymentNames,
): PipelineConfig[] {
  return pipelines.map((pipeline): PipelineConfig => {
    // An LLM at endpoint.url is not deployed by the stack: its URL is kept as given.
    if (pipeline.kind === 'generate' && pipeline.endpoint.url === undefined) {
      const name = names.endpointName(pipeline.endpoint.name);
      return name === pipeline.endpoint.name
        ? pipeline
        : { ...pipeline, endpoint: { ...pipeline.endpoint, name } };
    }
    if (pipeline.kind === 'embed') {
      const name = names.endpointName(pipeline.endpoint.name);
      return name === pipeline.endpoint.name
        ? pipeline
        : { ...pipeline, endpoint: { ...pipeline.endpoint, name } };
    }
    // An in-worker pipeline may name no endpoint (none is deployed for it).
    if (pipeline.kind !== 'score' || pipeline.model.endpointName === undefined) return pipeline;
    const endpointName = names.endpointName(pipeline.model.endpointName);
    return endpointName === pipeline.model.endpointName
      ? pipeline
      : { ...pipeline, model: { ...pipeline.model, endpointName } };
  });
}
