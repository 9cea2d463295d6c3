import 'aws-sdk-client-mock-vitest/extend';
import { GetEventSourceMappingCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { createAdapters, createAwsClients } from '../../functions/config/adapters.ts';
import { loadEnvironment } from '../../functions/config/environment.ts';
import { aPipeline, FINALIZE_QUEUE_URL, WORK_QUEUE_URL } from '../functions/factories.ts';

const UUID = '6d9bce8e-836b-461a-b1e9-da6b9ad6f4b2';
const base = {
  SLUICE_BUCKET: 'sluice-data',
  SLUICE_RUNS_TABLE: 'sluice-runs',
  SLUICE_WORK_QUEUE_URL: WORK_QUEUE_URL,
  SLUICE_FINALIZE_QUEUE_URL: FINALIZE_QUEUE_URL,
  SLUICE_PIPELINES: JSON.stringify([aPipeline('docs'), aPipeline('faq')]),
};

describe('deployed adapters: the work event source limit', () => {
  const lambda = mockClient(LambdaClient);
  afterEach(() => {
    lambda.reset();
  });

  it('reads SLUICE_WORK_EVENT_SOURCE_ID (plan and the sweeper carry it)', () => {
    expect(loadEnvironment({ ...base, SLUICE_WORK_EVENT_SOURCE_ID: UUID }).workEventSourceId).toBe(UUID);
    expect(loadEnvironment(base).workEventSourceId).toBeUndefined();
    expect(() => loadEnvironment({ ...base, SLUICE_WORK_EVENT_SOURCE_ID: ' ' })).toThrow(
      "environment: SLUICE_WORK_EVENT_SOURCE_ID: is empty: set it to the UUID of the work queue's event source mapping",
    );
  });

  it("follows the copies where the id is set, through the clients' LambdaClient, on that mapping, up to the largest maxConcurrency", async () => {
    lambda.on(GetEventSourceMappingCommand).resolves({ UUID, ScalingConfig: { MaximumConcurrency: 8 } });
    const env = loadEnvironment({ ...base, SLUICE_WORK_EVENT_SOURCE_ID: UUID });
    const clients = createAwsClients(env);
    expect(clients.lambda).toBeInstanceOf(LambdaClient);
    const { capacity } = createAdapters(env, clients);
    expect(capacity.workers?.ceiling).toBe(8);
    expect(capacity.workers?.capacities.map((c) => c.componentName).sort()).toEqual(
      [...env.pipelines.values()].map((p) => (p.kind === 'embed' ? `${p.endpoint.name}-model` : '')).sort(),
    );
    expect(await capacity.workers?.concurrency.current()).toBe(8);
    expect(lambda).toHaveReceivedCommandTimes(GetEventSourceMappingCommand, 1);
    expect(lambda).toHaveReceivedCommandWith(GetEventSourceMappingCommand, { UUID });
    for (const client of Object.values(clients)) client.destroy();
  });

  it('leaves the limit as deployed without the id (work, finalize, dead-letter), and makes no Lambda call', () => {
    const env = loadEnvironment(base);
    const clients = createAwsClients(env);
    expect(createAdapters(env, clients).capacity.workers).toBeUndefined();
    expect(lambda).not.toHaveReceivedAnyCommand();
    for (const client of Object.values(clients)) client.destroy();
  });
});
