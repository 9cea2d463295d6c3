import type { CapacityLifecycleOptions } from '../model-server/capacity-lifecycle.ts';
import { EchoBackend } from '../model-server/echo-backend.ts';
import { HashEmbedder } from '../model-server/hash-embedder.ts';
import { RulesChatBackend } from '../model-server/rules-chat-backend.ts';
import {
  DEFAULT_REQUEST_LIMITS,
  type RequestLimits,
  type ServedBackend,
  startModelServer,
} from '../model-server/server.ts';
import type { SimulatedGpuOptions } from '../model-server/simulated-gpu.ts';
import { XgboostJsonBackend } from '../model-server/xgboost-backend.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';
import { SERVE_MODEL_BACKENDS, SERVE_MODEL_OPTIONS } from './serve-model-flags.ts';

function numberOption(
  name: string,
  value: string | undefined,
  { min, max, integer }: { min: number; max: number; integer: boolean },
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    const kind = integer ? 'an integer' : 'a number';
    throw new UsageError(`--${name} must be ${kind} from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/** What `sluice serve-model` was asked to start. */
export interface ServeModelSettings {
  readonly backend: ServedBackend;
  readonly port: number;
  /** Present when any GPU simulation flag was given. */
  readonly gpu?: SimulatedGpuOptions;
  /** What one request may hold (`--max-client-batch-size`, `--max-batch-chars`, `--max-body-bytes`). */
  readonly limits: RequestLimits;
  /** The endpoint's capacity lifecycle; absent: one copy, serving. */
  readonly capacity?: CapacityLifecycleOptions;
}

/**
 * Validates the flags of `sluice serve-model` and loads the backend; a bad flag is a
 * UsageError naming it, a model that does not load a ConfigError (both exit 2).
 */
export async function parseServeModelArgs(args: string[]): Promise<ServeModelSettings> {
  const { values, positionals } = parseCommandArgs(args, SERVE_MODEL_OPTIONS);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const dimension = numberOption('dimension', values.dimension, { min: 2, max: 8192, integer: true }) ?? 384;
  if (values.backend !== 'xgboost-json' && values.backend !== 'onnx' && values.model !== undefined)
    throw new UsageError('--model is for --backend xgboost-json or onnx');
  const port = numberOption('port', values.port, { min: 0, max: 65535, integer: true }) ?? 0;
  const gpu = gpuOptions(values);
  const limits = requestLimits(values);
  const capacity = capacityOptions(values);
  // Every flag is checked before a model loads: loading an ONNX model takes a while.
  const chatFaults = {
    invalidJsonRate: numberOption('invalid-json-rate', values['invalid-json-rate'], {
      min: 0,
      max: 1,
      integer: false,
    }),
    throttleRate: numberOption('throttle-rate', values['throttle-rate'], { min: 0, max: 1, integer: false }),
  };
  if (
    values.backend !== 'rules-chat' &&
    (chatFaults.invalidJsonRate ?? chatFaults.throttleRate) !== undefined
  )
    throw new UsageError('--invalid-json-rate and --throttle-rate are for --backend rules-chat');
  const backend =
    values.backend === 'rules-chat'
      ? new RulesChatBackend(chatFaults)
      : await loadBackend(values.backend, values.model, dimension, values.dimension !== undefined);
  return {
    backend,
    port,
    limits,
    ...(gpu === undefined ? {} : { gpu }),
    ...(capacity === undefined ? {} : { capacity }),
  };
}

/**
 * The capacity lifecycle the flags ask for: `--scale-to-zero` starts with no copies,
 * `--warmup-seconds` is the time from copies asked for to serving, `--scale-in-seconds` how
 * long a scale-in reports Updating, `--wake-on-invoke` brings a copy on a call that finds
 * none (the NoCapacityInvocationFailures alarm), `--serverless` answers as a serverless
 * endpoint, `--component-name` the one inference component calls must name.
 */
function capacityOptions(
  values: Record<string, string | boolean | undefined>,
): CapacityLifecycleOptions | undefined {
  const flag = (name: string) => values[name] as string | undefined;
  const warmupSeconds = numberOption('warmup-seconds', flag('warmup-seconds'), {
    min: 0,
    max: 3600,
    integer: false,
  });
  const scaleInSeconds = numberOption('scale-in-seconds', flag('scale-in-seconds'), {
    min: 0,
    max: 3600,
    integer: false,
  });
  const componentName = flag('component-name');
  const options: CapacityLifecycleOptions = {
    ...(values['scale-to-zero'] === true ? { scaleToZero: true } : {}),
    ...(warmupSeconds === undefined ? {} : { warmupSeconds }),
    ...(scaleInSeconds === undefined ? {} : { scaleInSeconds }),
    ...(values['wake-on-invoke'] === true ? { wakeOnInvoke: true } : {}),
    ...(values.serverless === true ? { serverless: true } : {}),
    ...(componentName === undefined ? {} : { componentName }),
  };
  return Object.keys(options).length === 0 ? undefined : options;
}

function describeCapacity(capacity: CapacityLifecycleOptions): string {
  const start = capacity.scaleToZero ? 'starts with 0 copies' : 'starts with 1 copy';
  const kind = capacity.serverless ? 'serverless endpoint' : 'inference component';
  const wake = capacity.wakeOnInvoke ? ', a call finding none asks for 1 copy' : '';
  return `simulated ${kind}${capacity.componentName ? ` ${capacity.componentName}` : ''}: ${start}, copies serve ${capacity.warmupSeconds ?? 0} s after they are asked for${wake}; control plane at POST / (DescribeInferenceComponent, UpdateInferenceComponentRuntimeConfig)`;
}

/**
 * The request limits: `--max-client-batch-size` caps inputs per embedding request (and
 * rows per `text/csv` request), `--max-batch-chars` their characters together,
 * `--max-body-bytes` the body (at most SageMaker's 6 MB, which the client keeps to).
 */
function requestLimits(values: Record<string, string | boolean | undefined>): RequestLimits {
  const flag = (name: string) => values[name] as string | undefined;
  const batch = numberOption('max-client-batch-size', flag('max-client-batch-size'), {
    min: 1,
    max: 1_000_000,
    integer: true,
  });
  const chars = numberOption('max-batch-chars', flag('max-batch-chars'), {
    min: 1,
    max: DEFAULT_REQUEST_LIMITS.maxBodyBytes,
    integer: true,
  });
  const bytes = numberOption('max-body-bytes', flag('max-body-bytes'), {
    min: 1024,
    max: DEFAULT_REQUEST_LIMITS.maxBodyBytes,
    integer: true,
  });
  return {
    maxInputs: batch ?? DEFAULT_REQUEST_LIMITS.maxInputs,
    maxRows: batch ?? DEFAULT_REQUEST_LIMITS.maxRows,
    maxChars: chars ?? DEFAULT_REQUEST_LIMITS.maxChars,
    maxBodyBytes: bytes ?? DEFAULT_REQUEST_LIMITS.maxBodyBytes,
  };
}

async function loadBackend(
  name: string | undefined,
  model: string | undefined,
  dimension: number,
  dimensionGiven: boolean,
): Promise<ServedBackend> {
  if (name === 'hash-embed') return new HashEmbedder(dimension);
  if (name === 'echo') return new EchoBackend(dimension);
  if (name === 'xgboost-json') {
    if (model === undefined)
      throw new UsageError('--backend xgboost-json needs --model PATH (an XGBoost JSON model)');
    return XgboostJsonBackend.fromFile(model);
  }
  if (name === 'onnx') {
    if (model === undefined)
      throw new UsageError(
        '--backend onnx needs --model DIR (a folder with model.onnx or onnx/model.onnx and tokenizer.json)',
      );
    if (dimensionGiven)
      throw new UsageError("--dimension is not for --backend onnx: the model's output gives its dimension");
    // Imported only here, so the other backends never load onnxruntime-node.
    const { OnnxEmbeddingBackend } = await import('../model-server/onnx-backend.ts');
    return OnnxEmbeddingBackend.load(model);
  }
  throw new UsageError(`--backend must be one of ${SERVE_MODEL_BACKENDS.join(', ')}, got "${name}"`);
}

/** The GPU simulation the flags ask for; undefined when none of them is given. */
function gpuOptions(values: Record<string, string | boolean | undefined>): SimulatedGpuOptions | undefined {
  const flag = (name: string) => values[name] as string | undefined;
  const capacity = numberOption('capacity', flag('capacity'), { min: 1, max: 100_000, integer: true });
  const queue = numberOption('queue', flag('queue'), { min: 0, max: 100_000, integer: true });
  const latencyMsFixed = numberOption('latency-ms-fixed', flag('latency-ms-fixed'), {
    min: 0,
    max: 600_000,
    integer: false,
  });
  const latencyMsPerToken = numberOption('latency-ms-per-token', flag('latency-ms-per-token'), {
    min: 0,
    max: 1000,
    integer: false,
  });
  if (queue !== undefined && capacity === undefined)
    throw new UsageError('--queue needs --capacity: requests only wait when every slot is busy');
  const simulated = [capacity, queue, latencyMsFixed, latencyMsPerToken].some((v) => v !== undefined);
  if (!simulated) return undefined;
  return {
    ...(capacity === undefined ? {} : { capacity }),
    ...(queue === undefined ? {} : { queue }),
    ...(latencyMsFixed === undefined ? {} : { latencyMsFixed }),
    ...(latencyMsPerToken === undefined ? {} : { latencyMsPerToken }),
  };
}

function describeGpu(gpu: SimulatedGpuOptions): string {
  const capacity = gpu.capacity === undefined ? 'unlimited batches' : `${gpu.capacity} batches at once`;
  return `simulated GPU: ${capacity}, queue ${gpu.queue ?? 0}, latency ${gpu.latencyMsFixed ?? 0} ms + ${gpu.latencyMsPerToken ?? 0} ms per padded token; beyond capacity + queue, requests are throttled`;
}

/**
 * `sluice serve-model`: the local model server alone, until interrupted. With
 * `--capacity`, `--queue`, `--latency-ms-fixed` or `--latency-ms-per-token` it simulates a
 * GPU (see SimulatedGpu), for benchmarks of the endpoint client against the real SDK.
 */
export async function serveModelCommand(args: string[], io: CommandIo): Promise<number> {
  const settings = await parseServeModelArgs(args);
  const server = await startModelServer({
    backend: settings.backend,
    port: settings.port,
    limits: settings.limits,
    ...(settings.gpu === undefined ? {} : { gpu: settings.gpu }),
    ...(settings.capacity === undefined ? {} : { capacity: settings.capacity }),
  });
  // Ctrl-C, a kill by PID, or the terminal closing: stop serving and close the backend.
  // Listened for before the address is printed, so a signal sent on seeing it is not lost.
  const stopped = new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => resolve());
  });
  io.out(
    `listening on ${server.url} (POST /endpoints/<name>/invocations, POST /invocations, ${'kind' in settings.backend ? 'POST /v1/chat/completions' : 'POST /embed'}, GET /ping, GET /stats)`,
  );
  io.err(settings.backend.description);
  const { maxInputs, maxRows, maxChars, maxBodyBytes } = settings.limits;
  io.err(
    `limits per request: ${'contentType' in settings.backend ? `${maxRows} rows` : `${maxInputs} inputs, ${maxChars} characters`}, ${maxBodyBytes} bytes (larger requests get 413)`,
  );
  if (settings.gpu !== undefined) io.err(describeGpu(settings.gpu));
  if (settings.capacity !== undefined) io.err(describeCapacity(settings.capacity));
  await stopped;
  await server.close();
  if ('close' in settings.backend) await settings.backend.close?.();
  return 0;
}
