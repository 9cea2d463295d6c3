import { z } from 'zod';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';

/** The handlers' environment contract; infra sets these on every Sluice function. */
export const ENVIRONMENT_VARIABLES = {
  bucket: 'SLUICE_BUCKET',
  runsTable: 'SLUICE_RUNS_TABLE',
  workQueueUrl: 'SLUICE_WORK_QUEUE_URL',
  finalizeQueueUrl: 'SLUICE_FINALIZE_QUEUE_URL',
  pipelines: 'SLUICE_PIPELINES',
  sagemakerEndpointUrl: 'SLUICE_SAGEMAKER_ENDPOINT_URL',
} as const;

/** What the handlers know about their deployment, validated once per process. */
export interface Environment {
  readonly bucket: string;
  readonly runsTable: string;
  readonly workQueueUrl: string;
  readonly finalizeQueueUrl: string;
  /** Pipeline configs by name. */
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  /** Replaces the SageMaker runtime endpoint (a local model server in tests); absent on AWS. */
  readonly sagemakerEndpointUrl?: string;
}

const required = (fix: string) =>
  z
    .string({ error: `is not set: ${fix}` })
    .trim()
    .min(1, `is empty: ${fix}`);
const httpUrl = (fix: string) =>
  required(fix).refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
    message: `must be an http(s) URL: ${fix}`,
  });

const environmentSchema = z.object({
  [ENVIRONMENT_VARIABLES.bucket]: required('set it to the name of the Sluice bucket'),
  [ENVIRONMENT_VARIABLES.runsTable]: required('set it to the name of the runs table'),
  [ENVIRONMENT_VARIABLES.workQueueUrl]: httpUrl('set it to the URL of the work queue'),
  [ENVIRONMENT_VARIABLES.finalizeQueueUrl]: httpUrl('set it to the URL of the finalize queue'),
  [ENVIRONMENT_VARIABLES.pipelines]: required('set it to a JSON array of pipeline configs'),
  [ENVIRONMENT_VARIABLES.sagemakerEndpointUrl]: httpUrl(
    'set it to the URL of a server speaking the SageMaker runtime API, or unset it',
  ).optional(),
});

const KNOWN = new Set<string>(Object.values(ENVIRONMENT_VARIABLES));

/**
 * Validates the handlers' environment into a typed object. Every problem is one line
 * that names the variable and the fix; an unknown `SLUICE_*` variable is an error too,
 * so a misspelt name fails at cold start instead of silently using nothing.
 *
 * @throws ConfigError
 */
export function loadEnvironment(
  env: Readonly<Record<string, string | undefined>> = process.env,
): Environment {
  const unknown = Object.keys(env)
    .filter((name) => name.startsWith('SLUICE_') && !KNOWN.has(name))
    .sort();
  if (unknown.length > 0) {
    throw new ConfigError(
      `environment: ${unknown[0]}: unknown variable (expected one of ${[...KNOWN].join(', ')})`,
    );
  }
  const result = environmentSchema.safeParse(env);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(`environment: ${issue.path.join('.')}: ${issue.message}`);
  }
  const vars = result.data;
  const sagemakerEndpointUrl = vars[ENVIRONMENT_VARIABLES.sagemakerEndpointUrl];
  return {
    bucket: vars[ENVIRONMENT_VARIABLES.bucket],
    runsTable: vars[ENVIRONMENT_VARIABLES.runsTable],
    workQueueUrl: vars[ENVIRONMENT_VARIABLES.workQueueUrl],
    finalizeQueueUrl: vars[ENVIRONMENT_VARIABLES.finalizeQueueUrl],
    pipelines: parsePipelines(vars[ENVIRONMENT_VARIABLES.pipelines]),
    ...(sagemakerEndpointUrl === undefined ? {} : { sagemakerEndpointUrl }),
  };
}

function parsePipelines(json: string): ReadonlyMap<string, PipelineConfig> {
  const name = ENVIRONMENT_VARIABLES.pipelines;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new ConfigError(`environment: ${name}: is not valid JSON (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new ConfigError(`environment: ${name}: must be a non-empty JSON array of pipeline configs`);
  }
  const pipelines = new Map<string, PipelineConfig>();
  raw.forEach((entry, index) => {
    const config = parsePipelineConfig(entry, `environment: ${name}[${index}]`);
    if (pipelines.has(config.name)) {
      throw new ConfigError(`environment: ${name}[${index}]: pipeline ${config.name} appears twice`);
    }
    pipelines.set(config.name, config);
  });
  return pipelines;
}
