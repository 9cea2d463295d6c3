import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BackendInputError, type EmbeddingBackend } from './backend.ts';

/** SageMaker's limit on an InvokeEndpoint payload. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

export interface ModelServer {
  readonly url: string;
  readonly port: number;
  readonly backend: EmbeddingBackend;
  close(): Promise<void>;
}

export interface ModelServerOptions {
  readonly backend: EmbeddingBackend;
  /** 0 picks a free port. @default 0 */
  readonly port?: number;
  /** Loopback only by default: the local server has no authentication. @default '127.0.0.1' */
  readonly host?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_PAYLOAD_BYTES) throw new HttpError(413, `payload is over ${MAX_PAYLOAD_BYTES} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** TEI's request shape: `{"inputs": "text"}` or `{"inputs": ["a", "b"]}`. */
function parseInputs(body: Buffer): string[] {
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
  return list as string[];
}

function embedJson(backend: EmbeddingBackend, body: Buffer): string {
  const vectors = backend.embed(parseInputs(body));
  return JSON.stringify(vectors.map((v) => Array.from(v, (x) => Math.round(x * 1e7) / 1e7)));
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

/** Container routes (`/invocations`, TEI's `/embed`): errors as the container itself answers them. */
async function handleContainer(
  backend: EmbeddingBackend,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    send(res, 200, embedJson(backend, await readBody(req)));
  } catch (error) {
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
 * real SageMakerRuntimeClient raises the same exception it raises on AWS.
 */
async function handleRuntime(
  backend: EmbeddingBackend,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch (error) {
    send(res, 400, JSON.stringify({ message: (error as Error).message }), {
      'x-amzn-errortype': 'ValidationError:',
    });
    return;
  }
  try {
    send(res, 200, embedJson(backend, body), { 'x-amzn-invoked-production-variant': 'AllTraffic' });
  } catch (error) {
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

/**
 * Starts the local model server on loopback. It speaks the SageMaker runtime API
 * (`POST /endpoints/<name>/invocations`), the SageMaker container contract
 * (`GET /ping`, `POST /invocations`) and TEI's own routes (`POST /embed`, `GET /health`).
 */
export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const { backend } = options;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && (url.pathname === '/ping' || url.pathname === '/health')) {
      send(res, 200, JSON.stringify({ status: 'ok', model: backend.model }));
      return;
    }
    if (req.method === 'POST' && (url.pathname === '/invocations' || url.pathname === '/embed')) {
      void handleContainer(backend, req, res);
      return;
    }
    if (req.method === 'POST' && /^\/endpoints\/[^/]+\/invocations$/.test(url.pathname)) {
      void handleRuntime(backend, req, res);
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
