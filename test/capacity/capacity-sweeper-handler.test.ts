import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCapacitySweeperHandler } from '../../functions/capacity-sweeper.ts';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { CapacityControlError, WorkerConcurrencyError } from '../../shared/capacity/errors.ts';
import { inferenceComponentNameOf, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import type { WorkerConcurrency } from '../../shared/capacity/worker-concurrency.ts';
import { workerScalingOf } from '../../shared/capacity/workers.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { CapacityControl } from '../../shared/ports/capacity-control.ts';
import { pipelineConfig } from '../core/factories.ts';
import { aLambdaContext, testObservability } from '../functions/factories.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

const NOW = new Date('2026-12-07T03:00:00.000Z');

describe('capacity sweeper handler', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let runs: LocalRunStore;
  let control: LocalCapacityControl;
  const docs = pipelineConfig({ name: 'docs', endpoint: { name: 'docs-embed', dimension: 16 } });
  const faq = pipelineConfig({ name: 'faq', endpoint: { name: 'faq-embed', dimension: 16 } });
  // Two pipelines on one endpoint share its component: swept once.
  const docsAgain = pipelineConfig({ name: 'docs2', endpoint: { name: 'docs-embed', dimension: 16 } });
  const pipelines = new Map<string, PipelineConfig>([
    ['docs', docs],
    ['faq', faq],
    ['docs2', docsAgain],
  ]);
  const docsComponent = inferenceComponentNameOf('docs-embed');
  const faqComponent = inferenceComponentNameOf('faq-embed');

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-sweeper-'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
    control = new LocalCapacityControl();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const setup = (over: { control?: CapacityControl } = {}) => {
    const observability = testObservability();
    const handler = createCapacitySweeperHandler(
      { pipelines, runs, capacity: { leases, control: over.control ?? control } },
      { ...observability, now: () => NOW },
    );
    return { handler, observability };
  };

  it('sets each component to what its live leases need and counts them', async () => {
    const { run, units } = aRunWithUnits(1, { startedAt: NOW.toISOString() });
    await runs.createRun(run, units);
    await leases.take({ runId: run.runId, component: docsComponent, copies: 2, takenAt: NOW.toISOString() });
    await control.setCopies(faqComponent, 1);
    const { handler, observability } = setup();

    const result = await handler({}, aLambdaContext());

    expect(result.components).toEqual([
      { component: docsComponent, liveLeases: 1, copies: 2, set: 2 },
      { component: faqComponent, liveLeases: 0, copies: 0, set: 0 },
    ]);
    expect(observability.metricTotals()).toMatchObject({
      LiveLeases: 1,
      CapacityWithoutRun: 1,
      CapacitySweepErrors: 0,
    });
    expect(observability.logged('warn').join('\n')).toContain('copies up with no live run');
  });

  it('reports no capacity without a run when every component is as it should be', async () => {
    const { handler, observability } = setup();
    await handler({}, aLambdaContext());
    expect(observability.metricTotals()).toMatchObject({ CapacityWithoutRun: 0, LiveLeases: 0 });
  });

  it('sweeps the other components when one fails, then fails the invocation', async () => {
    await control.setCopies(faqComponent, 1);
    const failing: CapacityControl = {
      describe: async (name) => {
        if (name === docsComponent) throw new CapacityControlError(name, 'AccessDeniedException', false);
        return control.describe(name);
      },
      setCopies: (name, copies) => control.setCopies(name, copies),
    };
    const { handler, observability } = setup({ control: failing });

    await expect(handler({}, aLambdaContext())).rejects.toThrow(
      `capacity sweep failed for ${docsComponent} (AccessDeniedException)`,
    );
    expect((await control.describe(faqComponent)).desiredCopies).toBe(0);
    expect(observability.metricTotals()).toMatchObject({ CapacitySweepErrors: 1 });
    expect(observability.logged('error').join('\n')).toContain(docsComponent);
  });

  it('sets the work event source limit to what the live leases need, and fails when it cannot', async () => {
    const { run, units } = aRunWithUnits(1, { startedAt: NOW.toISOString() });
    await runs.createRun(run, units);
    await leases.take({ runId: run.runId, component: docsComponent, copies: 3, takenAt: NOW.toISOString() });
    let limit: number | undefined = 8;
    const concurrency: WorkerConcurrency = {
      current: async () => limit,
      set: async (maximum) => {
        limit = maximum;
        return { applied: true };
      },
    };
    const workers = workerScalingOf(
      concurrency,
      [...pipelines.values()],
      [pipelineCapacityOf(docs)!, pipelineCapacityOf(faq)!],
    );
    const observability = testObservability();
    const handler = createCapacitySweeperHandler(
      { pipelines, runs, capacity: { leases, control, workers } },
      { ...observability, now: () => NOW },
    );

    const result = await handler({}, aLambdaContext());
    expect(result.workers).toEqual({ live: 0, workers: 3, set: 3 });
    expect(limit).toBe(3);
    expect(observability.metricTotals()).toMatchObject({ WorkerConcurrency: 3, CapacitySweepErrors: 0 });

    const failing = createCapacitySweeperHandler(
      {
        pipelines,
        runs,
        capacity: {
          leases,
          control,
          workers: {
            ...workers,
            concurrency: {
              current: async () => {
                throw new WorkerConcurrencyError('cannot read the limit (AccessDeniedException)', false);
              },
              set: concurrency.set,
            },
          },
        },
      },
      { ...testObservability(), now: () => NOW },
    );
    await expect(failing({}, aLambdaContext())).rejects.toThrow(
      'capacity sweep failed for work event source (cannot read the limit (AccessDeniedException))',
    );
  });
});
