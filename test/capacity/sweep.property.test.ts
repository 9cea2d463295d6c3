import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import type { RunState } from '../../shared/domain/types.ts';
import { pipelineConfig } from '../core/factories.ts';
import { aRunWithUnits, aSummary } from '../support/run-fixtures.ts';

type Step =
  | { readonly kind: 'plan'; readonly copies: number }
  | { readonly kind: 'finish'; readonly pick: number }
  | { readonly kind: 'wait'; readonly seconds: number }
  | { readonly kind: 'sweep' };

const aStep: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('plan' as const), copies: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('wait' as const), seconds: fc.integer({ min: 1, max: 900 }) }),
  fc.constant({ kind: 'sweep' as const }),
);

/**
 * Runs planned and finalized in any order, with time passing and sweeps in between: after
 * every sweep the copies cover the running runs' leases (up to maxCopies) and never exceed
 * maxCopies; once every run is finalized and the cooldown has passed, a sweep leaves 0.
 */
describe('sweepCapacity over any sequence of plans, finalizes and sweeps', () => {
  let dir: string;
  let runs: LocalRunStore;
  let sequence = 0;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-sweep-property-'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('holds its rules', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(aStep, { minLength: 1, maxLength: 14 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 600 }),
        async (steps, maxCopies, cooldownSeconds) => {
          sequence += 1;
          const capacity = pipelineCapacityOf(
            pipelineConfig({
              endpoint: {
                name: `prop-${sequence}`,
                dimension: 16,
                capacity: { maxCopies, cooldownSeconds, leaseStaleSeconds: 86_400 },
              },
            }),
          )!;
          const component = capacity.componentName;
          const leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
          const control = new LocalCapacityControl();
          let now = Date.parse('2026-12-07T00:00:00.000Z');
          const running: { run: RunState; copies: number }[] = [];
          const sweep = () => sweepCapacity({ leases, control, runs }, [capacity], new Date(now));
          const check = async () => {
            const { desiredCopies } = await control.describe(component);
            const needed = Math.min(
              maxCopies,
              running.reduce((sum, r) => sum + r.copies, 0),
            );
            if (desiredCopies > maxCopies)
              throw new Error(`${desiredCopies} copies over maxCopies ${maxCopies}`);
            if (desiredCopies < needed)
              throw new Error(`${desiredCopies} copies under the ${needed} running runs hold`);
          };
          for (const step of steps) {
            if (step.kind === 'plan') {
              const { run, units } = aRunWithUnits(1, { startedAt: new Date(now).toISOString() });
              await runs.createRun(run, units);
              await leases.take({ runId: run.runId, component, copies: step.copies, takenAt: run.startedAt });
              running.push({ run, copies: step.copies });
            } else if (step.kind === 'finish' && running.length > 0) {
              const { run } = running.splice(step.pick % running.length, 1)[0]!;
              const at = new Date(now).toISOString();
              await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: at });
              await leases.release(component, run.runId, at, 'finalize');
            } else if (step.kind === 'wait') {
              now += step.seconds * 1000;
            } else if (step.kind === 'sweep') {
              const [result] = await sweep();
              if (result?.error) throw new Error(result.error);
              await check();
            }
          }
          // Every run finalized, the cooldown over: nothing keeps a copy.
          for (const { run } of running.splice(0)) {
            const at = new Date(now).toISOString();
            await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: at });
            await leases.release(component, run.runId, at, 'finalize');
          }
          now += cooldownSeconds * 1000;
          await sweep();
          const { desiredCopies } = await control.describe(component);
          if (desiredCopies !== 0) throw new Error(`${desiredCopies} copies left after the cooldown`);
        },
      ),
      { numRuns: 40 },
    );
  });
});
