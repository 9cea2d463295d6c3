import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { EmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { type LocalHome, openCheckedHome } from '../home.ts';
import { startLocalModel } from '../local-run.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';
import { defaultPipelinesDir } from './run.ts';

/** The flags that pick a pipeline's model, as `sluice run` takes them. */
export const MODEL_OPTIONS = {
  pipeline: { type: 'string' },
  home: { type: 'string' },
  pipelines: { type: 'string' },
  'endpoint-url': { type: 'string' },
  'model-dir': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export interface ModelChoice {
  readonly pipeline?: string | undefined;
  readonly home?: string | undefined;
  readonly pipelines?: string | undefined;
  readonly 'endpoint-url'?: string | undefined;
  readonly 'model-dir'?: string | undefined;
}

/** A pipeline's embedding model, started as `sluice run` starts it, for texts one at a time. */
export interface QueryEmbedder {
  readonly config: EmbedPipelineConfig;
  readonly home: LocalHome;
  /** The model id the pipeline's results record for this model (the `model` column). */
  readonly model: string;
  embed(text: string): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * Starts the model an embed pipeline's run would call: the local model server with the
 * weight-free hash-embed (default) or the ONNX folder of `--model-dir`, or the server at
 * `--endpoint-url`; called through the same SageMaker runtime client, limiter and retries
 * a worker uses (cli/local-run.ts `startLocalModel`, cli/threads/unit-deps.ts), so a query
 * is embedded exactly as the chunks were.
 * @throws UsageError (exit 2) for a missing or conflicting flag or a pipeline that does not embed
 */
export async function startQueryEmbedder(
  values: ModelChoice,
  command: string,
  log: (line: string) => void,
): Promise<QueryEmbedder> {
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required (a config in pipelines/NAME.json)');
  const endpointUrl = values['endpoint-url'];
  const modelDir = values['model-dir'];
  if (endpointUrl !== undefined && !/^https?:\/\//.test(endpointUrl))
    throw new UsageError(`--endpoint-url must be an http(s) URL, got "${endpointUrl}"`);
  if (modelDir !== undefined && endpointUrl !== undefined)
    throw new UsageError(
      'give --model-dir (a local ONNX model) or --endpoint-url (a running server), not both',
    );
  const config = await loadPipelineConfig(values.pipelines ?? defaultPipelinesDir(), values.pipeline);
  if (config.kind !== 'embed')
    throw new UsageError(
      `sluice ${command} needs an embedding pipeline; ${config.name} is a ${config.kind} pipeline`,
    );
  const home = await openCheckedHome(values.home, 'read');
  const model = await startLocalModel(home, config, endpointUrl, modelDir, log);
  const [{ PipelineEndpointRegistry }, { localSageMakerClient }] = await Promise.all([
    import('../../shared/adapters/aws/pipeline-endpoints.ts'),
    import('../threads/unit-deps.ts'),
  ]);
  const client = localSageMakerClient(model.endpointUrl!, [model.config]);
  const { endpoint } = new PipelineEndpointRegistry(client).endpointsFor(model.config);
  const served = model.config as EmbedPipelineConfig;
  return {
    config: served,
    home,
    model: served.endpoint.model,
    embed: async (text) => {
      const stats = { endpointCalls: 0, throttled: 0, retries: 0 };
      const [vector] = await endpoint!.embed([text], stats);
      if (!vector) throw new Error(`the model at ${model.endpointUrl} returned no vector`);
      return vector;
    },
    close: async () => {
      client.destroy();
      await model.server?.close();
    },
  };
}

/** The one text a command takes; blank text has no direction to compare. */
export function queryTextOf(positionals: readonly string[], command: string): string {
  if (positionals.length !== 1)
    throw new UsageError(
      `give exactly one text, e.g. sluice ${command} "how are queues retried" --pipeline docs`,
    );
  const text = positionals[0]!;
  if (text.trim() === '') throw new UsageError('the text is empty: give words to embed');
  return text;
}

/**
 * `sluice embed "text" --pipeline NAME`: the text's vector from the pipeline's model, as
 * one JSON array on stdout (with `--json`, `{model, dimension, embedding}`).
 */
export async function embedCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, MODEL_OPTIONS);
  const text = queryTextOf(positionals, 'embed');
  const embedder = await startQueryEmbedder(values, 'embed', (line) => io.err(line));
  try {
    const vector = await embedder.embed(text);
    io.out(
      JSON.stringify(
        values.json ? { model: embedder.model, dimension: vector.length, embedding: vector } : vector,
      ),
    );
    return 0;
  } finally {
    await embedder.close();
  }
}
