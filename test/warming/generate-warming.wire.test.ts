import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RulesChatBackend } from '../../cli/model-server/rules-chat-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { PipelineEndpointRegistry } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { sageMakerClientSettings } from '../../shared/adapters/aws/sagemaker-invoker.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { inferenceComponentNameOf, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { EndpointWarming } from '../../shared/errors/errors.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { warmingPolicyOf } from '../../shared/work/warming.ts';

/**
 * A generate pipeline's LLM endpoint is an inference component with run-scoped capacity
 * (issue 18): its workers name the component in every call, and a call that finds no copy
 * sends the unit back to wait, as embed units do, instead of failing it. Over the real
 * SageMakerRuntimeClient against the local server scaled to zero (SageMaker's answers).
 */
const ENDPOINT = 'sluice-generate-triage';
const RUN_ID = 'r-20261207T030000Z-abcdef';
const T0 = Date.parse('2026-12-07T03:00:00Z');

function generateConfig(endpoint: Record<string, unknown> = {}): GeneratePipelineConfig {
  const config = parsePipelineConfig({
    name: 'generate-triage',
    kind: 'generate',
    input: { format: 'jsonl' },
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    prompt: { user: 'Ticket {{ id }}: {{ text }}' },
    endpoint: { name: ENDPOINT, capacity: { warmupLimitSeconds: 600 }, ...endpoint },
    workers: { maxReceiveCount: 3 },
  });
  if (config.kind !== 'generate') throw new Error('not a generate config');
  return config;
}

class DelayingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  later: { unit: WorkUnit; delaySeconds: number }[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize() {}
  async sendUnitLater(unit: WorkUnit, delaySeconds: number) {
    this.later.push({ unit, delaySeconds });
  }
}

describe('a generate pipeline on a cold LLM endpoint', () => {
  let dir: string;
  let server: ModelServer;
  let client: SageMakerRuntimeClient;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-generate-warming-'));
    server = await startModelServer({
      backend: new RulesChatBackend(),
      capacity: { scaleToZero: true, componentName: inferenceComponentNameOf(ENDPOINT) },
    });
    client = new SageMakerRuntimeClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      ...sageMakerClientSettings({ requestTimeoutMs: 30_000, maxSockets: 50 }),
    });
  });
  afterEach(async () => {
    client.destroy();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('has run-scoped capacity on the component derived from its endpoint, and none with endpoint.url', () => {
    const config = generateConfig();
    expect(pipelineCapacityOf(config)).toMatchObject({
      endpointName: ENDPOINT,
      componentName: `${ENDPOINT}-model`,
      instanceType: 'ml.g5.2xlarge',
      capacity: { mode: 'run-scoped', warmupLimitSeconds: 600 },
    });
    expect(warmingPolicyOf(config).limitSeconds).toBe(600);
    expect(pipelineCapacityOf(generateConfig({ url: 'http://127.0.0.1:8000' }))).toBeUndefined();
  });

  it('defers the unit (no failure, no attempt burnt) while no copy serves, then answers once one does', async () => {
    const config = generateConfig();
    const store = new MemoryObjectStore(50);
    const runs = new LocalRunStore(dir);
    const queue = new DelayingQueue();
    const tickets = Array.from({ length: 4 }, (_, i) => ({
      id: `t${i}`,
      text: `cannot log in, ticket ${i}`,
    }));
    await store.put(
      'incoming/generate-triage/a.jsonl',
      `${tickets.map((t) => JSON.stringify(t)).join('\n')}\n`,
    );
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/generate-triage/a.jsonl'],
      now: new Date(T0),
    });
    const unit = units[0]!;
    const registry = new PipelineEndpointRegistry(client, { sleep: async () => {} });
    const { chatEndpoint } = registry.endpointsFor(config);
    const deps = { store, runs, queue, chatEndpoint, tokenCounter: new EstimatingTokenCounter() };

    const cold = await processUnit(deps, config, unit, { isLastAttempt: true, now: () => T0 });

    expect(cold).toEqual({ status: 'deferred', delaySeconds: 20, warmingSince: T0 });
    expect(queue.later).toHaveLength(1);
    expect(queue.later[0]!.unit).toMatchObject({
      unitId: unit.unitId,
      warmingSince: T0,
      warmingDeferrals: 1,
    });
    // The calls named the component: the server counted them as finding no copy.
    expect(server.stats().capacity.noCapacity).toBeGreaterThan(0);
    expect(server.stats().served).toBe(0);
    expect((await runs.getUnit(RUN_ID, unit.unitId))?.status).not.toBe('failed');

    server.capacity.setCopies(1);
    const warm = await processUnit(deps, config, queue.later[0]!.unit, {
      isLastAttempt: false,
      now: () => T0 + 30_000,
    });
    expect(warm.status).not.toBe('deferred');
    expect(server.stats().served).toBe(tickets.length);
  });

  it('surfaces the no-capacity answer as EndpointWarming from the chat adapter', async () => {
    const { chatEndpoint } = new PipelineEndpointRegistry(client, { sleep: async () => {} }).endpointsFor(
      generateConfig(),
    );
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });
    await expect(
      chatEndpoint!.complete(body, 16, { endpointCalls: 0, throttled: 0, retries: 0 }),
    ).rejects.toBeInstanceOf(EndpointWarming);
  });
});
