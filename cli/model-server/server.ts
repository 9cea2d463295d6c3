import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_INVOKE_PAYLOAD_BYTES } from '../../shared/endpoint/payload-limit.ts';
import { BackendInputError, type EmbeddingBackend } from './backend.ts';
import {
  CapacityLifecycle,
  type CapacityLifecycleOptions,
  type CapacityStats,
  CapacityUpdateRefused,
  componentNameRefusal,
  runtimeConfigRefusal,
} from './capacity-lifecycle.ts';
import type { ChatBackend } from './rules-chat-backend.ts';
import { SimulatedGpu, type SimulatedGpuOptions, type SimulatedGpuStats } from './simulated-gpu.ts';
import type { CsvScoringBackend } from './xgboost-backend.ts';

/**
 * What the server can serve: an embedding model (JSON, TEI shape), a scoring model
 * (`text/csv`) or a chat model (OpenAI-compatible chat completions).
 */
export type ServedBackend = EmbeddingBackend | CsvScoringBackend | ChatBackend;

const isChatBackend = (backend: ServedBackend): backend is ChatBackend =>
  'kind' in backend && backend.kind === 'chat';

const isCsvBackend = (backend: ServedBackend): backend is CsvScoringBackend =>
  'contentType' in backend && backend.contentType === 'text/csv';

/** Counters of a running server, also served as JSON by `GET /stats`. */
export interface ModelServerStats {
  readonly model: string;
  /** Invocations received on any route. */
  readonly requests: number;
  /** Answered with vectors. */
  readonly served: number;
  /** Refused because the simulated GPU was full. */
  readonly throttled: number;
  /** Answered with an error (bad request, refused input, backend failure). */
  readonly failed: number;
  /** Inputs embedded. */
  readonly inputs: number;
  /** The simulated GPU's counters (busy time, padded tokens); absent without a simulation. */
  readonly gpu?: SimulatedGpuStats;
  /** The endpoint's simulated capacity: its state, copies, and calls refused for want of it. */
  readonly capacity: CapacityStats;
}

export interface ModelServer {
  readonly url: string;
  readonly port: number;
  readonly backend: ServedBackend;
  /** The endpoint's capacity, which the control-plane route and tests change. */
  readonly capacity: CapacityLifecycle;
  stats(): ModelServerStats;
  close(): Promise<void>;
}

export interface ModelServerOptions {
  readonly backend: ServedBackend;
  /** 0 picks a free port. @default 0 */
  readonly port?: number;
  /** Loopback only by default: the local server has no authentication. @default '127.0.0.1' */
  readonly host?: string;
  /**
   * Simulate a GPU: limited concurrent batches, a latency per batch, and throttling beyond
   * capacity plus queue, answered as SageMaker (runtime route) or TEI (container routes)
   * answer it. @default none: every request is answered as soon as the backend is done
   */
  readonly gpu?: SimulatedGpuOptions;
  /** What one request may hold; each limit left out takes its default. @default DEFAULT_REQUEST_LIMITS */
  readonly limits?: Partial<RequestLimits>;
  /**
   * The endpoint's capacity lifecycle (scale to zero, warm-up, scale-in), answered on the
   * runtime route as SageMaker does and changed through the emulated control plane.
   * @default one copy, serving: every call is answered
   */
  readonly capacity?: CapacityLifecycleOptions;
}

/**
 * What one request may hold, as TEI bounds its own (`--max-client-batch-size`, 413
 * `Validation` errors naming the limit): the server parses, embeds and answers a whole
 * request in memory, so without them one body of many tiny inputs could take gigabytes.
 */
export interface RequestLimits {
  /** Inputs per embedding request (TEI's max-client-batch-size). */
  readonly maxInputs: number;
  /** Rows per `text/csv` scoring request. */
  readonly maxRows: number;
  /** Characters of all the inputs of one embedding request together. */
  readonly maxChars: number;
  /** Bytes of one request body. */
  readonly maxBodyBytes: number;
}

/**
 * Defaults no pipeline's own requests reach: `batching.maxBatchSize` is at most 1,024
 * inputs, `model.maxRowsPerRequest` at most 100,000 rows, and the endpoint client keeps
 * a body (so its characters) within SageMaker's 6 MB.
 */
export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxInputs: 1024,
  maxRows: 100_000,
  maxChars: MAX_INVOKE_PAYLOAD_BYTES,
  maxBodyBytes: MAX_INVOKE_PAYLOAD_BYTES,
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes)
    throw new HttpError(413, `payload of ${declared} bytes is over the limit of ${maxBytes} bytes`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, `payload is over the limit of ${maxBytes} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/**
 * The strings in a JSON body (quotes not escaped by a backslash, in pairs), counted
 * without parsing, so a body of millions of tiny inputs is refused before it is turned
 * into millions of strings.
 */
function jsonStrings(body: Buffer): number {
  let quotes = 0;
  let backslashes = 0;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    if (byte === 92) backslashes += 1;
    else {
      if (byte === 34 && backslashes % 2 === 0) quotes += 1;
      backslashes = 0;
    }
  }
  return quotes >> 1;
}

/** Strings a request may hold besides its inputs: keys and options such as `truncation_direction`. */
const OTHER_STRINGS = 16;

/** TEI's request shape: `{"inputs": "text"}` or `{"inputs": ["a", "b"]}`, within the limits. */
function parseInputs(body: Buffer, limits: RequestLimits): string[] {
  const strings = jsonStrings(body);
  if (strings > limits.maxInputs + OTHER_STRINGS) throw tooManyInputs('about', strings, limits);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
  const inputs = (parsed as { inputs?: unknown } | null)?.inputs;
  const list = typeof inputs === 'string' ? [inputs] : inputs;
  if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string')) {
    throw new HttpError(400, '"inputs" must be a string or a non-empty array of strings');
  }
  if (list.length > limits.maxInputs) throw tooManyInputs('', list.length, limits);
  let chars = 0;
  for (const input of list as string[]) chars += input.length;
  if (chars > limits.maxChars)
    throw new HttpError(
      413,
      `batch has ${chars} characters > maximum allowed ${limits.maxChars} characters (--max-batch-chars)`,
    );
  return list as string[];
}

/** TEI's wording for a batch over its max-client-batch-size, with a 413 as TEI answers it. */
function tooManyInputs(qualifier: string, count: number, limits: RequestLimits): HttpError {
  return new HttpError(
    413,
    `batch size ${qualifier ? `${qualifier} ` : ''}${count} > maximum allowed batch size ${limits.maxInputs} (--max-client-batch-size)`,
  );
}

/**
 * The vectors as a JSON array of arrays, each value rounded to 7 decimals. Written with
 * `Float64Array.join`, which prints numbers as JSON does, at about a third of the cost of
 * `JSON.stringify` over mapped arrays (the server shares the machine with `sluice run`);
 * a vector with a non-finite value (JSON has no NaN) takes the `JSON.stringify` path.
 */
export function vectorsJson(vectors: readonly Float32Array[]): string {
  const parts: string[] = new Array(vectors.length);
  for (let i = 0; i < vectors.length; i++) {
    const vector = vectors[i]!;
    const rounded = new Float64Array(vector.length);
    for (let j = 0; j < vector.length; j++) {
      const value = Math.round(vector[j]! * 1e7) / 1e7;
      if (!Number.isFinite(value)) return JSON.stringify(vectors.map((v) => Array.from(v, round7)));
      rounded[j] = value;
    }
    parts[i] = `[${rounded.join(',')}]`;
  }
  return `[${parts.join(',')}]`;
}

const round7 = (x: number): number => Math.round(x * 1e7) / 1e7;

interface Counters {
  requests: number;
  served: number;
  throttled: number;
  failed: number;
  inputs: number;
}

interface Answer {
  readonly body: string;
  readonly contentType: string;
}

/** Answers one request body; `undefined` means the simulated GPU is full and the request is throttled. */
type Invoke = (body: Buffer, contentType: string | undefined) => Promise<Answer | undefined>;

/** Lines of a `text/csv` body that hold a row (not blank). */
function csvRows(body: Buffer): number {
  let rows = 0;
  let blank = true;
  for (const byte of body) {
    if (byte === 10) {
      if (!blank) rows += 1;
      blank = true;
    } else if (byte !== 13 && byte !== 32 && byte !== 9) blank = false;
  }
  return blank ? rows : rows + 1;
}

/** SageMaker's built-in XGBoost contract: `text/csv` rows in, `text/csv` predictions out. */
function csvInvoker(backend: CsvScoringBackend, counters: Counters, limits: RequestLimits): Invoke {
  return async (body, contentType) => {
    if (!contentType?.startsWith('text/csv')) {
      throw new HttpError(
        415,
        `this model takes text/csv, not ${contentType ?? 'a request without a content type'}`,
      );
    }
    const rows = csvRows(body);
    if (rows > limits.maxRows)
      throw new HttpError(
        413,
        `batch of ${rows} rows > maximum allowed ${limits.maxRows} rows (--max-client-batch-size)`,
      );
    const answer = backend.score(body.toString('utf8'));
    counters.inputs += rows;
    return { body: answer, contentType: 'text/csv' };
  };
}

/** OpenAI-compatible chat completions (JSON in, JSON out); the backend may refuse a request as overloaded. */
function chatInvoker(backend: ChatBackend, counters: Counters): Invoke {
  return async (body) => {
    const answer = backend.complete(body.toString('utf8'));
    if (answer === undefined) return undefined;
    counters.inputs += 1;
    return { body: answer, contentType: 'application/json' };
  };
}

function invoker(
  backend: ServedBackend,
  gpu: SimulatedGpu | undefined,
  counters: Counters,
  limits: RequestLimits,
): Invoke {
  if (isCsvBackend(backend)) return csvInvoker(backend, counters, limits);
  if (isChatBackend(backend)) return chatInvoker(backend, counters);
  const embedded = async (inputs: string[]): Promise<Answer> => {
    const json = vectorsJson(await backend.embed(inputs));
    counters.inputs += inputs.length;
    return { body: json, contentType: 'application/json' };
  };
  return async (body) => {
    const inputs = parseInputs(body, limits);
    if (gpu === undefined) return embedded(inputs);
    const admitted = gpu.admit(inputs);
    if (admitted === undefined) return undefined;
    const slot = await admitted;
    try {
      return await embedded(inputs);
    } finally {
      await slot.finish();
    }
  };
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

/** Container routes (`/invocations`, TEI's `/embed`): errors as the container itself answers them. */
async function handleContainer(
  invoke: Invoke,
  counters: Counters,
  limits: RequestLimits,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const answer = await invoke(await readBody(req, limits.maxBodyBytes), req.headers['content-type']);
    if (answer === undefined) {
      // TEI's answer when its queue is full.
      counters.throttled += 1;
      send(res, 429, JSON.stringify({ error: 'Model is overloaded', error_type: 'overloaded' }));
      return;
    }
    counters.served += 1;
    send(res, 200, answer.body, { 'content-type': answer.contentType });
  } catch (error) {
    counters.failed += 1;
    const status = error instanceof HttpError ? error.status : error instanceof BackendInputError ? 400 : 500;
    send(
      res,
      status,
      JSON.stringify({
        error: (error as Error).message,
        error_type: status < 500 ? 'Validation' : 'Backend',
      }),
    );
  }
}

/**
 * SageMaker runtime route (`/endpoints/<name>/invocations`): a container 4xx/5xx comes
 * back as SageMaker does it, HTTP 424 `ModelError` carrying `OriginalStatusCode`, so the
 * real SageMakerRuntimeClient raises the same exception it raises on AWS. A full simulated
 * GPU answers as SageMaker throttles: HTTP 400 `ThrottlingException`.
 */
async function handleRuntime(
  invoke: Invoke,
  counters: Counters,
  limits: RequestLimits,
  capacity: CapacityLifecycle,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let body: Buffer;
  try {
    body = await readBody(req, limits.maxBodyBytes);
  } catch (error) {
    counters.failed += 1;
    send(res, 400, JSON.stringify({ message: (error as Error).message }), {
      'x-amzn-errortype': 'ValidationError:',
    });
    return;
  }
  const component = req.headers['x-amzn-sagemaker-inference-component'];
  const refusal = capacity.admit(typeof component === 'string' ? component : undefined);
  if (refusal !== undefined) {
    counters.failed += 1;
    send(res, refusal.status, JSON.stringify({ message: refusal.message }), {
      'x-amzn-errortype': `${refusal.errorType}:`,
    });
    return;
  }
  try {
    const answer = await invoke(body, req.headers['content-type']);
    if (answer === undefined) {
      counters.throttled += 1;
      send(res, 400, JSON.stringify({ message: 'Rate exceeded: the endpoint is at its capacity' }), {
        'x-amzn-errortype': 'ThrottlingException:',
      });
      return;
    }
    counters.served += 1;
    send(res, 200, answer.body, {
      'content-type': answer.contentType,
      'x-amzn-invoked-production-variant': 'AllTraffic',
    });
  } catch (error) {
    counters.failed += 1;
    const status = error instanceof HttpError ? error.status : error instanceof BackendInputError ? 400 : 500;
    const message = (error as Error).message;
    send(
      res,
      424,
      JSON.stringify({
        ErrorCode: status < 500 ? 'CLIENT_ERROR_FROM_MODEL' : 'SERVER_ERROR_FROM_MODEL',
        Message: `Received ${status < 500 ? 'client' : 'server'} error (${status}) from primary with message "${message}"`,
        OriginalMessage: message,
        OriginalStatusCode: status,
      }),
      { 'x-amzn-errortype': 'ModelError:' },
    );
  }
}

const AWS_JSON = 'application/x-amz-json-1.1';
const ACCOUNT = '000000000000';
const REGION = 'us-east-1';

function sendAwsJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': AWS_JSON });
  res.end(JSON.stringify(body));
}

function awsJsonError(res: ServerResponse, status: number, type: string, message: string): void {
  sendAwsJson(res, status, { __type: type, message });
}

/**
 * The two SageMaker control-plane calls run-scoped capacity uses, over SageMaker's own
 * protocol (awsJson1_1: `POST /`, `X-Amz-Target: SageMaker.<Operation>`), so the real
 * SageMakerClient pointed at this server reads and changes the simulated copies:
 * `DescribeInferenceComponent` and `UpdateInferenceComponentRuntimeConfig`. Anything else
 * is an `UnknownOperationException`.
 */
async function handleControlPlane(
  capacity: CapacityLifecycle,
  endpointName: () => string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const target = String(req.headers['x-amz-target'] ?? '');
  let input: { InferenceComponentName?: unknown; DesiredRuntimeConfig?: { CopyCount?: unknown } };
  try {
    input = JSON.parse((await readBody(req, 1024 * 1024)).toString('utf8') || '{}');
  } catch {
    awsJsonError(res, 400, 'SerializationException', 'request body is not JSON');
    return;
  }
  const name = input.InferenceComponentName;
  const known = capacity.componentName;
  if (
    target === 'SageMaker.DescribeInferenceComponent' ||
    target === 'SageMaker.UpdateInferenceComponentRuntimeConfig'
  ) {
    const refusal =
      componentNameRefusal(name) ??
      (target === 'SageMaker.UpdateInferenceComponentRuntimeConfig'
        ? runtimeConfigRefusal(input.DesiredRuntimeConfig)
        : undefined);
    if (refusal !== undefined) {
      awsJsonError(res, refusal.status, refusal.errorType, refusal.message);
      return;
    }
    if (known !== undefined && name !== known) {
      awsJsonError(res, 400, 'ValidationException', `Could not find inference component "${name}".`);
      return;
    }
  }
  const arn = `arn:aws:sagemaker:${REGION}:${ACCOUNT}:inference-component/${name}`;
  if (target === 'SageMaker.DescribeInferenceComponent') {
    const { status, desiredCopies, currentCopies } = capacity.describe();
    const endpoint = endpointName();
    sendAwsJson(res, 200, {
      InferenceComponentName: name,
      InferenceComponentArn: arn,
      EndpointName: endpoint,
      EndpointArn: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:endpoint/${endpoint}`,
      VariantName: 'AllTraffic',
      InferenceComponentStatus: status,
      RuntimeConfig: { DesiredCopyCount: desiredCopies, CurrentCopyCount: currentCopies },
    });
    return;
  }
  if (target === 'SageMaker.UpdateInferenceComponentRuntimeConfig') {
    try {
      capacity.setCopies(input.DesiredRuntimeConfig?.CopyCount as number);
    } catch (error) {
      if (!(error instanceof CapacityUpdateRefused)) throw error;
      awsJsonError(res, 400, 'ValidationException', error.message);
      return;
    }
    sendAwsJson(res, 200, { InferenceComponentArn: arn });
    return;
  }
  awsJsonError(res, 400, 'UnknownOperationException', `operation ${target || '(none)'} is not emulated`);
}

/**
 * Starts the local model server on loopback. It speaks the SageMaker runtime API
 * (`POST /endpoints/<name>/invocations`), the SageMaker container contract
 * (`GET /ping`, `POST /invocations`) and TEI's own routes (`POST /embed`, `GET /health`);
 * `GET /stats` reports its counters as JSON. The runtime route answers as the endpoint's
 * simulated capacity allows (`capacity`), and `POST /` emulates the two control-plane calls
 * that change it.
 */
export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const { backend } = options;
  const gpu = options.gpu === undefined ? undefined : new SimulatedGpu(options.gpu);
  const counters: Counters = { requests: 0, served: 0, throttled: 0, failed: 0, inputs: 0 };
  const limits: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...options.limits };
  const invoke = invoker(backend, gpu, counters, limits);
  const capacity = new CapacityLifecycle(options.capacity);
  /** The endpoint the runtime route was last called as (DescribeInferenceComponent reports it). */
  let endpointName = 'sluice-local';
  const stats = (): ModelServerStats => ({
    model: backend.model,
    ...counters,
    ...(gpu === undefined ? {} : { gpu: gpu.stats() }),
    capacity: capacity.stats(),
  });
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && (url.pathname === '/ping' || url.pathname === '/health')) {
      send(res, 200, JSON.stringify({ status: 'ok', model: backend.model }));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/stats') {
      send(res, 200, JSON.stringify(stats()));
      return;
    }
    // `/v1/chat/completions`: the OpenAI-compatible route vLLM, llama.cpp and Ollama serve (`--endpoint-url`).
    if (
      req.method === 'POST' &&
      (url.pathname === '/invocations' ||
        url.pathname === '/embed' ||
        (url.pathname === '/v1/chat/completions' && isChatBackend(backend)))
    ) {
      counters.requests += 1;
      void handleContainer(invoke, counters, limits, req, res);
      return;
    }
    const runtime = req.method === 'POST' ? /^\/endpoints\/([^/]+)\/invocations$/.exec(url.pathname) : null;
    if (runtime) {
      counters.requests += 1;
      endpointName = decodeURIComponent(runtime[1]!);
      void handleRuntime(invoke, counters, limits, capacity, req, res);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/' && req.headers['x-amz-target'] !== undefined) {
      void handleControlPlane(capacity, () => endpointName, req, res).catch((error: unknown) => {
        awsJsonError(res, 500, 'InternalFailure', (error as Error).message);
      });
      return;
    }
    send(res, 404, JSON.stringify({ message: `no route for ${req.method} ${url.pathname}` }), {
      'x-amzn-errortype': 'UnknownOperationException:',
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    backend,
    capacity,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
