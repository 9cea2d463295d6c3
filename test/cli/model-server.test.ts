import {
  InvokeEndpointCommand,
  SageMakerRuntimeClient,
  ModelError as SdkModelError,
} from '@aws-sdk/client-sagemaker-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendInputError } from '../../cli/model-server/backend.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { emptyCounts } from '../../shared/domain/types.ts';
import { ModelError } from '../../shared/errors/errors.ts';

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let dot = 0;
  for (let i = 0; i < a.length; i += 1) dot += a[i]! * b[i]!;
  return dot;
};

describe('HashEmbedder', () => {
  const embedder = new HashEmbedder(256);

  it('is deterministic, L2-normalised and lexical', () => {
    const [a, b, c] = embedder.embed([
      'the queue holds messages',
      'the queue holds messages',
      'parquet row groups',
    ]);
    expect(Array.from(a!)).toEqual(Array.from(b!));
    expect(cosine(a!, a!)).toBeCloseTo(1, 5);
    const near = embedder.embedOne('messages wait in the queue');
    expect(cosine(a!, near)).toBeGreaterThan(cosine(a!, c!));
    expect(embedder.description).toMatch(/lexical, not semantic/);
  });
});

describe('local model server', () => {
  let server: ModelServer;
  let client: SageMakerRuntimeClient;

  beforeAll(async () => {
    server = await startModelServer({ backend: new HashEmbedder(32) });
    client = new SageMakerRuntimeClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
  });
  afterAll(async () => {
    client.destroy();
    await server.close();
  });

  it('listens on loopback and answers the container contract', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${server.url}/ping`)).status).toBe(200);
    const res = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      body: JSON.stringify({ inputs: ['a b', 'c'] }),
    });
    const vectors = (await res.json()) as number[][];
    expect(vectors).toHaveLength(2);
    expect(vectors[0]).toHaveLength(32);
    const bad = await fetch(`${server.url}/embed`, { method: 'POST', body: '{"inputs": []}' });
    expect(bad.status).toBe(400);
  });

  it('speaks the SageMaker runtime API to the real client', async () => {
    const out = await client.send(
      new InvokeEndpointCommand({
        EndpointName: 'any',
        ContentType: 'application/json',
        Body: JSON.stringify({ inputs: 'hello' }),
      }),
    );
    expect(JSON.parse(new TextDecoder().decode(out.Body))[0]).toHaveLength(32);
    const error = await client
      .send(
        new InvokeEndpointCommand({
          EndpointName: 'any',
          ContentType: 'application/json',
          Body: '{"inputs": 5}',
        }),
      )
      .catch((e) => e);
    expect(error).toBeInstanceOf(SdkModelError);
    expect(error).toMatchObject({ OriginalStatusCode: 400 });
  });

  it('surfaces a refused payload as a ModelError the endpoint client does not retry', async () => {
    const picky = new HashEmbedder(8);
    const refusing = await startModelServer({
      backend: {
        ...picky,
        description: picky.description,
        model: picky.model,
        dimension: 8,
        embed: (inputs) => {
          if (inputs.some((t) => t.includes('POISON'))) throw new BackendInputError('input is poison');
          return picky.embed(inputs);
        },
      },
    });
    const refusingClient = new SageMakerRuntimeClient({
      endpoint: refusing.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    try {
      const endpoint = new SageMakerEmbeddingEndpoint({
        client: refusingClient,
        endpointName: 'any',
        maxRetries: 3,
        timeoutMs: 5000,
      });
      const stats = emptyCounts();
      expect(await endpoint.embed(['fine', 'also fine'], stats)).toHaveLength(2);
      const error = await endpoint.embed(['fine', 'POISON'], stats).catch((e) => e);
      expect(error).toBeInstanceOf(ModelError);
      expect(error).toMatchObject({ originalStatus: 400 });
      expect(stats).toMatchObject({ endpointCalls: 2, retries: 0 });
    } finally {
      refusingClient.destroy();
      await refusing.close();
    }
  });
});
