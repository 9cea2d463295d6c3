import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { createCapacitySweeperHandler } from '../../functions/capacity-sweeper.ts';
import { createAdapters, createAwsClients, type SluiceAdapters } from '../../functions/config/adapters.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import { aLambdaContext, anEnvironment, aPipeline, testObservability } from '../functions/factories.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { localClientConfig } from '../support/local-aws.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

const COMPONENT = inferenceComponentNameOf('sluice-docs-embed');

/**
 * The deployed sweeper's wiring on the wire: the adapters a Lambda builds from its
 * environment, the leases in a runs table on dynalite, and the real SageMakerClient on the
 * local model server's control plane (SLUICE_SAGEMAKER_ENDPOINT_URL, as in tests of the
 * runtime client).
 */
describe('capacity sweeper over dynalite and the local model server', () => {
  const dynalite = useDynaliteTables();
  let server: ModelServer;
  let adapters: SluiceAdapters;
  let clock = Date.parse('2026-12-07T03:00:00.000Z');

  beforeAll(async () => {
    server = await startModelServer({
      backend: new HashEmbedder(8),
      // As deployed before any run: one copy up (the stack's initial count).
      capacity: { componentName: COMPONENT, now: () => clock },
    });
    const env = anEnvironment([aPipeline('docs')], {
      SLUICE_SAGEMAKER_ENDPOINT_URL: server.url,
      SLUICE_RUNS_TABLE: await dynalite.newTable(),
    });
    const local = localClientConfig(dynalite.endpoint);
    const clients = createAwsClients(env, {
      dynamo: { ...local, maxAttempts: 1 },
      sagemaker: { region: local.region, credentials: local.credentials },
    });
    adapters = createAdapters(env, clients);
  });

  afterAll(async () => {
    await server?.close();
  });

  const sweep = async () => {
    const observability = testObservability();
    const handler = createCapacitySweeperHandler(adapters, { ...observability, now: () => new Date(clock) });
    const result = await handler({}, aLambdaContext('SluiceStack-CapacitySweeper-EXAMPLE'));
    return { result, metrics: observability.metricTotals() };
  };

  it('scales a component with no run to zero, then raises it for a run’s lease and marks it ready', async () => {
    const first = await sweep();
    expect(first.result.components).toEqual([{ component: COMPONENT, liveLeases: 0, copies: 0, set: 0 }]);
    expect(first.metrics).toMatchObject({ CapacityWithoutRun: 1, LiveLeases: 0 });
    expect(server.capacity.describe()).toMatchObject({ desiredCopies: 0, currentCopies: 0 });

    const { run, units } = aRunWithUnits(2, { pipeline: 'docs', startedAt: new Date(clock).toISOString() });
    await adapters.runs.createRun(run, units);
    await adapters.capacity.leases.take({
      runId: run.runId,
      component: COMPONENT,
      copies: 2,
      takenAt: new Date(clock).toISOString(),
    });
    clock += 60_000;
    const second = await sweep();
    expect(second.result.components).toEqual([{ component: COMPONENT, liveLeases: 1, copies: 2, set: 2 }]);
    expect(server.capacity.describe()).toMatchObject({ desiredCopies: 2, currentCopies: 2 });

    clock += 60_000;
    await sweep();
    expect((await adapters.capacity.leases.get(COMPONENT, run.runId))?.readyAt).toBe(
      new Date(clock).toISOString(),
    );
  });
});
