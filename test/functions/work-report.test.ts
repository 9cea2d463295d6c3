import { describe, expect, it } from 'vitest';
import { reportUnitAttemptFailed, reportUnitOutcome, unitDeliveryOf } from '../../functions/work-report.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { aPipeline, testObservability } from './factories.ts';

const config = parsePipelineConfig(aPipeline('docs'));
const about = unitDeliveryOf(
  {
    runId: 'r1',
    unitId: 'u1',
    pipeline: 'docs',
    sourceKey: 'incoming/docs/a.jsonl',
    byteStart: 0,
    byteEnd: 100,
    estCost: 1,
  } as Parameters<typeof unitDeliveryOf>[0],
  config,
  2,
);

describe('work reporting', () => {
  it('carries the unit, its range and its delivery count on every line', () => {
    expect(about).toMatchObject({ runId: 'r1', unitId: 'u1', byteEnd: 100, receiveCount: 2 });
    expect(about.maxReceiveCount).toBe(config.workers.maxReceiveCount);
  });

  it('counts a waiting unit, not a failed one, when the endpoint has no capacity', () => {
    const obs = testObservability();
    reportUnitOutcome(obs, about, { status: 'deferred', delaySeconds: 30, warmingSince: 0 });
    expect(obs.metricTotals()).toEqual({ UnitsWaitingForCapacity: 1 });
    expect(obs.logged('info')[0]).toContain('"retryInSeconds":30');
  });

  it('counts a failed unit only on the last delivery of a thrown attempt', () => {
    const early = testObservability();
    reportUnitAttemptFailed(early, about, false, new Error('boom'));
    expect(early.metricTotals()).toEqual({ UnitAttemptsFailed: 1 });
    expect(early.logged('warn')).toHaveLength(1);
    const last = testObservability();
    reportUnitAttemptFailed(last, about, true, new Error('boom'));
    expect(last.metricTotals()).toEqual({ UnitAttemptsFailed: 1, UnitsFailed: 1 });
    expect(last.logged('error')[0]).toContain('goes to the DLQ');
  });
});
