import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { workPoolsOf } from '../../shared/capacity/work-pools.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';

/**
 * The handlers' environment contract. Infra sets the bucket, table and queue variables and
 * the pipelines file with its hash on every Sluice function; the configs themselves ship in
 * the code asset, because Lambda caps a function's environment at 4 KB.
 */
export const ENVIRONMENT_VARIABLES = {
  bucket: 'SLUICE_BUCKET',
  runsTable: 'SLUICE_RUNS_TABLE',
  workQueueUrl: 'SLUICE_WORK_QUEUE_URL',
  /**
   * The compute queue of a stack whose pipelines split between two work functions
   * (`workPoolsOf`, issue 14): infra sets it on plan, both work functions, finalize and
   * dead-letter exactly when the split holds, and only then.
   */
  workComputeQueueUrl: 'SLUICE_WORK_COMPUTE_QUEUE_URL',
  finalizeQueueUrl: 'SLUICE_FINALIZE_QUEUE_URL',
  /**
   * The pipeline configs file: a name in the function's code folder (`LAMBDA_TASK_ROOT`,
   * else the working folder) or an absolute path. How deployed functions get their configs.
   */
  pipelinesFile: 'SLUICE_PIPELINES_FILE',
  /** sha256 (hex) of the pipelines file; required with it, so code and configuration cannot drift apart. */
  pipelinesSha256: 'SLUICE_PIPELINES_SHA256',
  /** The pipeline configs inline, as a JSON array: for tests and local wiring, instead of the file. */
  pipelines: 'SLUICE_PIPELINES',
  sagemakerEndpointUrl: 'SLUICE_SAGEMAKER_ENDPOINT_URL',
  /** UUID of the work queue's event source mapping (plan and the capacity sweeper only): its limit follows the copies. */
  workEventSourceId: 'SLUICE_WORK_EVENT_SOURCE_ID',
  /** The recommendations table the work function writes users' lists to (recommend pipelines only). */
  recommendationsTable: 'SLUICE_RECOMMENDATIONS_TABLE',
} as const;

/** What the handlers know about their deployment, validated once per process. */
export interface Environment {
  readonly bucket: string;
  readonly runsTable: string;
  readonly workQueueUrl: string;
  /**
   * Where units of the compute pool's pipelines go (score in-worker, recommend): set exactly
   * when `workPoolsOf` splits the pipelines, absent otherwise (every unit on the work queue).
   */
  readonly workComputeQueueUrl?: string;
  readonly finalizeQueueUrl: string;
  /** Pipeline configs by name. */
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  /** Replaces the SageMaker runtime endpoint (a local model server in tests); absent on AWS. */
  readonly sagemakerEndpointUrl?: string;
  /** The function's region (`AWS_REGION`, set by the Lambda runtime): the prices a run's cost uses. */
  readonly region?: string;
  /** The work event source whose `MaximumConcurrency` follows the copies (plan and the capacity sweeper). */
  readonly workEventSourceId?: string;
  /** Where similarity units write users' lists for serving by key (the work function of a stack with recommend pipelines). */
  readonly recommendationsTable?: string;
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
  [ENVIRONMENT_VARIABLES.workComputeQueueUrl]: httpUrl(
    'set it to the URL of the compute queue (infra does when the pipelines split), or unset it',
  ).optional(),
  [ENVIRONMENT_VARIABLES.finalizeQueueUrl]: httpUrl('set it to the URL of the finalize queue'),
  [ENVIRONMENT_VARIABLES.pipelinesFile]: required(
    'set it to the pipelines file deployed with the function, or unset it',
  ).optional(),
  [ENVIRONMENT_VARIABLES.pipelinesSha256]: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits: set it to the sha256 of the pipelines file')
    .optional(),
  [ENVIRONMENT_VARIABLES.pipelines]: required(
    'set it to a JSON array of pipeline configs, or unset it',
  ).optional(),
  [ENVIRONMENT_VARIABLES.sagemakerEndpointUrl]: httpUrl(
    'set it to the URL of a server speaking the SageMaker runtime API, or unset it',
  ).optional(),
  [ENVIRONMENT_VARIABLES.workEventSourceId]: required(
    "set it to the UUID of the work queue's event source mapping (infra does), or unset it",
  ).optional(),
  [ENVIRONMENT_VARIABLES.recommendationsTable]: required(
    "set it to the stack's recommendations table (infra does), or unset it",
  ).optional(),
});

const KNOWN = new Set<string>(Object.values(ENVIRONMENT_VARIABLES));

export interface LoadEnvironmentOptions {
  /**
   * Whether the function sends units (plan, work, finalize, dead-letter). One that never does
   * (the capacity sweeper) runs without the compute queue of a split stack; infra sets it
   * only where units are sent.
   * @default true
   */
  readonly sendsUnits?: boolean;
}

/**
 * Validates the handlers' environment into a typed object. Every problem is one line
 * that names the variable and the fix; an unknown `SLUICE_*` variable is an error too,
 * so a misspelt name fails at cold start instead of silently using nothing.
 *
 * Pipeline configs come from `SLUICE_PIPELINES_FILE` (what infra deploys: a file in the
 * code folder, read once here and checked against `SLUICE_PIPELINES_SHA256`) or from
 * `SLUICE_PIPELINES` inline (tests and local wiring); exactly one must be set.
 *
 * @throws ConfigError
 */
export function loadEnvironment(
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: LoadEnvironmentOptions = {},
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
  const pipelines = loadPipelines(vars, env.LAMBDA_TASK_ROOT);
  const workComputeQueueUrl = computeQueueOf(
    vars[ENVIRONMENT_VARIABLES.workComputeQueueUrl],
    pipelines,
    options.sendsUnits ?? true,
  );
  return {
    bucket: vars[ENVIRONMENT_VARIABLES.bucket],
    runsTable: vars[ENVIRONMENT_VARIABLES.runsTable],
    workQueueUrl: vars[ENVIRONMENT_VARIABLES.workQueueUrl],
    ...(workComputeQueueUrl === undefined ? {} : { workComputeQueueUrl }),
    finalizeQueueUrl: vars[ENVIRONMENT_VARIABLES.finalizeQueueUrl],
    pipelines,
    ...(sagemakerEndpointUrl === undefined ? {} : { sagemakerEndpointUrl }),
    ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}),
    ...(vars[ENVIRONMENT_VARIABLES.workEventSourceId] === undefined
      ? {}
      : { workEventSourceId: vars[ENVIRONMENT_VARIABLES.workEventSourceId] }),
    ...(vars[ENVIRONMENT_VARIABLES.recommendationsTable] === undefined
      ? {}
      : { recommendationsTable: vars[ENVIRONMENT_VARIABLES.recommendationsTable] }),
  };
}

/**
 * The compute queue, checked against the split the pipelines make: a split stack without it
 * would send compute units nowhere, and one set on a stack that does not split means the
 * code and the stack disagree about where units go.
 */
function computeQueueOf(
  url: string | undefined,
  pipelines: ReadonlyMap<string, PipelineConfig>,
  sendsUnits: boolean,
): string | undefined {
  const NAME = ENVIRONMENT_VARIABLES.workComputeQueueUrl;
  const pools = workPoolsOf([...pipelines.values()]);
  if (pools.split && url === undefined && sendsUnits)
    throw new ConfigError(
      `environment: ${NAME}: is not set, but pipelines ${pools.compute.map((p) => p.name).join(', ')} work from the compute queue beside ${pools.work.map((p) => p.name).join(', ')}: set it to the compute queue's URL (infra does; deploy the stack again)`,
    );
  if (!pools.split && url !== undefined)
    throw new ConfigError(
      `environment: ${NAME}: is set, but the pipelines do not split between two work queues (every unit goes to the work queue): unset it, or deploy the stack again`,
    );
  return url;
}

/** The pipeline configs from the bundled file (deployed) or the inline variable (tests), exactly one of them. */
function loadPipelines(
  vars: z.infer<typeof environmentSchema>,
  taskRoot: string | undefined,
): ReadonlyMap<string, PipelineConfig> {
  const { pipelinesFile: FILE, pipelinesSha256: SHA256, pipelines: INLINE } = ENVIRONMENT_VARIABLES;
  const file = vars[FILE];
  const sha256 = vars[SHA256];
  const inline = vars[INLINE];
  if (inline !== undefined) {
    if (file !== undefined) {
      throw new ConfigError(
        `environment: ${INLINE}: set either ${INLINE} or ${FILE}, not both: deployed functions use ${FILE}`,
      );
    }
    if (sha256 !== undefined) {
      throw new ConfigError(`environment: ${SHA256}: only applies with ${FILE}: unset it`);
    }
    return parsePipelines(inline, INLINE);
  }
  if (file === undefined) {
    throw new ConfigError(
      `environment: ${FILE}: is not set: set it to the pipelines file deployed with the function (infra does), or set ${INLINE} to a JSON array of pipeline configs`,
    );
  }
  if (sha256 === undefined) {
    throw new ConfigError(
      `environment: ${SHA256}: is not set: set it to the sha256 of ${FILE} (infra sets both)`,
    );
  }
  const resolved = path.resolve(taskRoot ?? process.cwd(), file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(resolved);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(
      `environment: ${FILE}: cannot read ${resolved} (${reason}): deploy the stack again so the file ships with the function, or point ${FILE} at it`,
      { cause: error },
    );
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== sha256) {
    throw new ConfigError(
      `environment: ${FILE}: ${resolved} has sha256 ${actual}, not ${SHA256} ${sha256}: the code and the configuration come from different deployments; deploy the stack again`,
    );
  }
  return parsePipelines(bytes.toString('utf8'), FILE);
}

/** A JSON array of pipeline configs, each validated; `name` is the variable they came from, for messages. */
function parsePipelines(json: string, name: string): ReadonlyMap<string, PipelineConfig> {
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
