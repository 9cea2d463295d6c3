import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { describe, expect, it } from 'vitest';
import { localSageMakerClient } from '../../cli/threads/unit-deps.ts';
import { createAwsClients } from '../../functions/config/adapters.ts';
import { sageMakerClientSettingsFor } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { anEnvironment, aPipeline } from '../functions/factories.ts';

const embed = (name: string, endpoint: { timeoutMs: number; concurrency: number }) =>
  parsePipelineConfig(
    aPipeline(name, { endpoint: { name: `sluice-${name}-embed`, dimension: 8, ...endpoint } }),
  );

describe('the SageMaker client the endpoint invokers share', () => {
  it('makes one attempt, caches its middleware, and ends an attempt after the longest pipeline timeout', () => {
    const settings = sageMakerClientSettingsFor([
      embed('docs', { timeoutMs: 30_000, concurrency: 16 }),
      embed('faq', { timeoutMs: 90_000, concurrency: 120 }),
    ]);
    expect(settings).toEqual({
      maxAttempts: 1,
      cacheMiddleware: true,
      requestHandler: {
        requestTimeout: 90_000,
        throwOnRequestTimeout: true,
        httpAgent: { maxSockets: 120 },
        httpsAgent: { maxSockets: 120 },
      },
    });
    // No pipeline: the SDK's pool of 50 and a minute.
    expect(sageMakerClientSettingsFor([]).requestHandler).toMatchObject({
      requestTimeout: 60_000,
      httpsAgent: { maxSockets: 50 },
    });
  });

  it('is how the deployed workers and the local run build it', async () => {
    const env = anEnvironment([
      aPipeline('docs', { endpoint: { name: 'sluice-docs-embed', dimension: 8, timeoutMs: 45_000 } }),
    ]);
    const deployed = createAwsClients(env).sagemaker;
    const local = localSageMakerClient('http://127.0.0.1:9', env.pipelines.values());
    try {
      for (const client of [deployed, local]) {
        expect(client).toBeInstanceOf(SageMakerRuntimeClient);
        expect(client.config.cacheMiddleware).toBe(true);
        expect(await client.config.maxAttempts()).toBe(1);
        const handler = client.config.requestHandler as unknown as {
          configProvider: Promise<{ requestTimeout?: number; throwOnRequestTimeout?: boolean }>;
        };
        expect(await handler.configProvider).toMatchObject({
          requestTimeout: 45_000,
          throwOnRequestTimeout: true,
        });
      }
    } finally {
      deployed.destroy();
      local.destroy();
    }
  });
});
