import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sageMakerClientSettingsFor } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { parseEmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { EndpointUnavailable, ModelError } from '../../shared/errors/errors.ts';
import { aPipeline } from '../functions/factories.ts';
import { localClientConfig } from '../support/local-aws.ts';

type Responder = (req: IncomingMessage, body: string, res: ServerResponse) => void;

/**
 * The real SageMakerRuntimeClient against a scripted server on loopback that speaks the
 * runtime wire protocol (restJson1 errors named by `x-amzn-errortype`), so the adapter's
 * reading of bodies, error names and aborts is checked on what the SDK really produces.
 */
describe('SageMakerEmbeddingEndpoint over the wire', () => {
  let server: Server;
  let client: SageMakerRuntimeClient;
  let script: Responder[] = [];
  const requests: { url: string; contentType: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      req.on('end', () => {
        requests.push({ url: req.url ?? '', contentType: req.headers['content-type'], body });
        const respond = script.shift();
        if (respond) respond(req, body, res);
        else res.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    client = new SageMakerRuntimeClient({ ...localClientConfig(`http://127.0.0.1:${port}`), maxAttempts: 1 });
  });

  afterAll(async () => {
    client?.destroy();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  beforeEach(() => {
    script = [];
    requests.length = 0;
  });

  const endpoint = (timeoutMs = 2000) =>
    new SageMakerEmbeddingEndpoint({
      client,
      endpointName: 'sluice-embed',
      maxRetries: 2,
      timeoutMs,
      sleep: async () => {},
    });
  const json = (status: number, body: unknown, headers: Record<string, string> = {}): Responder => {
    return (_req, _body, res) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    };
  };

  it('posts the TEI request to the endpoint invocation path and reads the vectors', async () => {
    script.push((_req, body, res) => {
      const { inputs } = JSON.parse(body) as { inputs: string[] };
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(inputs.map((_, i) => [i, 0.5])));
    });
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };

    expect(await endpoint().embed(['x', 'y'], stats)).toEqual([
      [0, 0.5],
      [1, 0.5],
    ]);
    expect(requests[0]).toMatchObject({
      url: '/endpoints/sluice-embed/invocations',
      contentType: 'application/json',
      body: '{"inputs":["x","y"],"truncate":true}',
    });
  });

  it('counts a throttled answer and retries it', async () => {
    script.push(
      json(400, { message: 'Rate exceeded' }, { 'x-amzn-errortype': 'ThrottlingException' }),
      json(200, [[1, 2]]),
    );
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };

    expect(await endpoint().embed(['x'], stats)).toEqual([[1, 2]]);
    expect(stats).toEqual({ endpointCalls: 2, throttled: 1, retries: 1 });
  });

  it('turns a container 4xx relayed by SageMaker into ModelError without retrying', async () => {
    script.push(
      json(
        424,
        {
          Message: 'Received client error (413)',
          OriginalStatusCode: 413,
          OriginalMessage: 'batch too large',
        },
        { 'x-amzn-errortype': 'ModelError' },
      ),
    );
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };

    const error = await endpoint()
      .embed(['x'], stats)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({ originalStatus: 413 });
    expect(requests).toHaveLength(1);
  });

  it('ends a request that hangs past the timeout (the client as Sluice builds it) and retries on a fresh one', async () => {
    const hung: ServerResponse[] = [];
    script.push(
      (_req, _body, res) => {
        hung.push(res);
      },
      json(200, [[3, 4]]),
    );
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };
    const timing = new SageMakerRuntimeClient({
      ...localClientConfig(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
      ...sageMakerClientSettingsFor([
        parseEmbedPipelineConfig(aPipeline('docs', { endpoint: { name: 'sluice-embed', timeoutMs: 100 } })),
      ]),
    });
    try {
      const endpoint = new SageMakerEmbeddingEndpoint({
        client: timing,
        endpointName: 'sluice-embed',
        maxRetries: 2,
        timeoutMs: 100,
        sleep: async () => {},
      });
      expect(await endpoint.embed(['x'], stats)).toEqual([[3, 4]]);
      expect(stats).toEqual({ endpointCalls: 2, throttled: 0, retries: 1 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      // The hung connection is closed, not left open (its request, read to the end, always reads destroyed).
      expect(hung[0]!.socket?.destroyed ?? true).toBe(true);
      expect(hung[0]!.destroyed).toBe(true);
    } finally {
      timing.destroy();
    }
  });

  it('gives up with EndpointUnavailable when the server keeps failing', async () => {
    script.push(json(500, {}), json(502, {}), json(503, {}, { 'x-amzn-errortype': 'ServiceUnavailable' }));
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };

    await expect(endpoint().embed(['x'], stats)).rejects.toBeInstanceOf(EndpointUnavailable);
    expect(stats).toEqual({ endpointCalls: 3, throttled: 0, retries: 2 });
  });
});
