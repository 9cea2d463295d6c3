import type { AthenaClient } from '@aws-sdk/client-athena';
import type { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { deployedPipelines, deploymentNames } from '../../infra/deployment-names.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { EmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import {
  currentModelsSql,
  MAX_K,
  type NearestChunk,
  nearestChunkOf,
  nearestChunksAthenaSql,
  nearestChunksDuckDbSql,
} from '../../shared/views/nearest-chunks.ts';
import { type AthenaCost, describeCost } from '../deployed/deployed-query.ts';
import { DEPLOYED_OPTIONS, type DeployedTarget, deployedTarget } from '../deployed/deployed-target.ts';
import { queryLocalTables } from '../query/local-tables.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import { MODEL_OPTIONS, queryTextOf, startQueryEmbedder } from './embed.ts';
import type { CommandIo } from './io.ts';
import { defaultPipelinesDir } from './run.ts';

/** @default 10 */
const DEFAULT_K = 10;
/** Characters of a chunk's text shown per result (the whole text is in `--json`). */
const EXCERPT_CHARS = 100;

/** A search that cannot compare: no current chunk of the pipeline was embedded by the query's model. */
export class NothingToSearch extends ConfigError {}

/**
 * The `k` chunks of `embeddings_current` nearest to `vector` (cosine), from DuckDB over
 * the home's results, sandboxed as `sluice query` is.
 * @throws NothingToSearch when the pipeline has no current chunk from `model`
 */
export async function searchLocalChunks(
  bucketDir: string,
  query: { pipeline: string; model: string; vector: readonly number[]; k: number },
): Promise<NearestChunk[]> {
  const { rows } = await queryLocalTables(bucketDir, nearestChunksDuckDbSql(query));
  if (rows.length > 0) return rows.map(nearestChunkOf);
  const models = (await queryLocalTables(bucketDir, currentModelsSql(query.pipeline))).rows;
  if (models.length === 0)
    throw new NothingToSearch(
      `pipeline ${query.pipeline} has no current embeddings: run it first (sluice run PATH --pipeline ${query.pipeline})`,
    );
  const found = models.map((m) => `${m.model} (${m.chunks} chunks)`).join(', ');
  throw new NothingToSearch(
    `pipeline ${query.pipeline}'s current chunks were embedded by ${found}, not ${query.model}: search with the model the run used (--model-dir DIR or --endpoint-url URL as given to sluice run)`,
  );
}

/** The SDK clients a deployed search calls; tests pass mocked ones. */
export interface DeployedSearchClients {
  /** @default a client from the AWS environment (credentials, region) */
  readonly sagemaker?: SageMakerRuntimeClient;
  /** @default as `sluice query --deployed` makes it */
  readonly athena?: AthenaClient;
}

/**
 * (primary adapter: CLI) -> the deployed stack: the text embedded by the pipeline's
 * SageMaker endpoint as the stack names it (`<stack id>-<endpoint.name>` outside the
 * `Sluice` stack, its inference component when capacity is run-scoped), through the
 * workers' endpoint client; then the nearest chunks of the stack's `embeddings_current`
 * view by one Athena query in its workgroup (cli/deployed/deployed-query.ts).
 */
export async function searchDeployedChunks(
  request: {
    readonly text: string;
    readonly config: EmbedPipelineConfig;
    readonly k: number;
    readonly timeoutMs: number;
  },
  target: DeployedTarget,
  clients: DeployedSearchClients = {},
): Promise<{ results: NearestChunk[]; cost: AthenaCost }> {
  const [deployed] = deployedPipelines([request.config], deploymentNames(target.stackName));
  const [{ SageMakerRuntimeClient }, { PipelineEndpointRegistry }, { queryDeployed }] = await Promise.all([
    import('@aws-sdk/client-sagemaker-runtime'),
    import('../../shared/adapters/aws/pipeline-endpoints.ts'),
    import('../deployed/deployed-query.ts'),
  ]);
  const sagemaker = clients.sagemaker ?? new SageMakerRuntimeClient({});
  const { endpoint } = new PipelineEndpointRegistry(sagemaker).endpointsFor(deployed!);
  const [vector] = await endpoint!.embed([request.text], { endpointCalls: 0, throttled: 0, retries: 0 });
  if (!vector)
    throw new Error(`endpoint ${(deployed as EmbedPipelineConfig).endpoint.name} returned no vector`);
  const sql = nearestChunksAthenaSql({ pipeline: request.config.name, vector, k: request.k });
  const { result, cost } = await queryDeployed(sql, target, {
    maxRows: request.k,
    timeoutMs: request.timeoutMs,
    unsafe: false,
    ...(clients.athena && { athena: clients.athena }),
  });
  if (result.rows.length === 0)
    throw new NothingToSearch(
      `stack ${target.stackName} has no current ${vector.length}-dimensional chunks of pipeline ${request.config.name} in embeddings_current`,
    );
  return { results: result.rows.map(nearestChunkOf), cost };
}

function excerptOf(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS - 1)}…` : flat;
}

/**
 * `sluice search "text" --pipeline NAME [-k N]`: embeds the text with the pipeline's model
 * (as `sluice run` calls it) and prints the `k` nearest current chunks with their document
 * id, cosine score and an excerpt; `--json` prints them as one JSON array.
 */
export async function searchCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    ...MODEL_OPTIONS,
    ...DEPLOYED_OPTIONS,
    k: { type: 'string', short: 'k' },
    timeout: { type: 'string' },
  });
  const k = values.k === undefined ? DEFAULT_K : Number(values.k);
  if (!Number.isInteger(k) || k < 1 || k > MAX_K)
    throw new UsageError(`-k must be an integer from 1 to ${MAX_K}, got "${values.k}"`);
  const text = queryTextOf(positionals, 'search');
  if (values.deployed) return searchDeployedCommand(text, k, values, io);
  const embedder = await startQueryEmbedder(values, 'search', (line) => io.err(line));
  let results: NearestChunk[];
  try {
    const vector = await embedder.embed(text);
    results = await searchLocalChunks(embedder.home.bucketDir, {
      pipeline: embedder.config.name,
      model: embedder.model,
      vector,
      k,
    });
  } catch (error) {
    if (error instanceof NothingToSearch) throw new UsageError(error.message);
    throw error;
  } finally {
    await embedder.close();
  }
  printResults(results, values.json, io);
  if (!values.json)
    io.out(
      `(${results.length} nearest of pipeline ${embedder.config.name}'s current chunks, model ${embedder.model})`,
    );
  return 0;
}

async function searchDeployedCommand(
  text: string,
  k: number,
  values: { readonly [flag: string]: string | boolean | undefined },
  io: CommandIo,
): Promise<number> {
  if (values['model-dir'] !== undefined || values['endpoint-url'] !== undefined || values.home !== undefined)
    throw new UsageError(
      "--deployed embeds with the stack's endpoint and reads its Athena views: leave out --model-dir, --endpoint-url and --home",
    );
  if (typeof values.pipeline !== 'string' || values.pipeline === '')
    throw new UsageError('--pipeline NAME is required (a config in pipelines/NAME.json)');
  const timeout = values.timeout === undefined ? 300 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new UsageError(`--timeout must be a number of seconds above 0, got "${values.timeout}"`);
  const pipelines = typeof values.pipelines === 'string' ? values.pipelines : defaultPipelinesDir();
  const config = await loadPipelineConfig(pipelines, values.pipeline);
  if (config.kind !== 'embed')
    throw new UsageError(
      `sluice search needs an embedding pipeline; ${config.name} is a ${config.kind} pipeline`,
    );
  const target = deployedTarget(typeof values.stack === 'string' ? { stack: values.stack } : {});
  let found: Awaited<ReturnType<typeof searchDeployedChunks>>;
  try {
    found = await searchDeployedChunks({ text, config, k, timeoutMs: timeout * 1000 }, target);
  } catch (error) {
    if (error instanceof NothingToSearch) throw new UsageError(error.message);
    throw error;
  }
  printResults(found.results, values.json === true, io);
  if (values.json !== true)
    io.out(
      `(${found.results.length} nearest of stack ${target.stackName}'s embeddings_current, pipeline ${config.name})`,
    );
  io.err(describeCost(found.cost));
  return 0;
}

function printResults(results: readonly NearestChunk[], json: boolean, io: CommandIo): void {
  if (json) {
    io.out(JSON.stringify(results));
    return;
  }
  const width = Math.max(...results.map((r) => r.docId.length), 'doc'.length);
  io.out(`${'#'.padStart(3)}  score   ${'doc'.padEnd(width)}  chunk  excerpt`);
  for (const r of results)
    io.out(
      `${String(r.rank).padStart(3)}  ${r.score.toFixed(4)}  ${r.docId.padEnd(width)}  ${String(r.chunkIndex).padStart(5)}  ${excerptOf(r.text)}`,
    );
}
