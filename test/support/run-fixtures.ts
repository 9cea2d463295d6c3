import type { RunState, RunSummary, UnitCounts, WorkUnit } from '../../shared/domain/types.ts';
import { emptyCounts } from '../../shared/domain/types.ts';

let sequence = 0;

/** A fresh run id that sorts by `startedAt` like real ones (`r-YYYYMMDDTHHMMSSZ-xxxxxx`). */
export function aRunId(startedAt = '2026-03-01T10:00:00.000Z'): string {
  sequence += 1;
  const stamp = startedAt.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `r-${stamp}-${sequence.toString(16).padStart(6, '0')}`;
}

export function aRun(overrides: Partial<RunState> = {}): RunState {
  const startedAt = overrides.startedAt ?? '2026-03-01T10:00:00.000Z';
  return {
    runId: aRunId(startedAt),
    pipeline: 'docs',
    trigger: 's3',
    startedAt,
    inputs: ['incoming/docs/a.jsonl'],
    status: 'running',
    finishedAt: null,
    totalUnits: 0,
    doneUnits: 0,
    failedUnits: 0,
    ...overrides,
  };
}

/** Unit `u0000`, `u0001`, ... of a run: consecutive 1 MiB ranges of one source. */
export function aUnit(runId: string, index: number, overrides: Partial<WorkUnit> = {}): WorkUnit {
  return {
    runId,
    unitId: `u${index.toString().padStart(4, '0')}`,
    pipeline: 'docs',
    sourceKey: 'incoming/docs/a.jsonl',
    byteStart: index * 1_048_576,
    byteEnd: (index + 1) * 1_048_576,
    firstLine: index * 1000 + 1,
    format: 'jsonl',
    compression: 'none',
    packed: [],
    estCost: 50_000,
    ...overrides,
  };
}

/** A run with `count` units, its `totalUnits` consistent with them. */
export function aRunWithUnits(count: number, overrides: Partial<RunState> = {}) {
  const run = aRun({ ...overrides, totalUnits: count });
  const units = Array.from({ length: count }, (_, i) => aUnit(run.runId, i));
  return { run, units };
}

export function someCounts(overrides: Partial<UnitCounts> = {}): UnitCounts {
  return { ...emptyCounts(), records: 120, chunks: 150, embedded: 150, realTokens: 48_000, ...overrides };
}

export function aSummary(run: RunState, overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    runId: run.runId,
    pipeline: run.pipeline,
    status: 'succeeded',
    trigger: run.trigger,
    startedAt: run.startedAt,
    finishedAt: '2026-03-01T10:05:00.000Z',
    counts: {
      records: 0,
      rejected: 0,
      units: run.totalUnits,
      failedUnits: 0,
      chunks: 0,
      embedded: 0,
      skippedUnchanged: 0,
      removedChunks: 0,
      scored: 0,
    },
    stats: { realTokens: 0, paddedTokens: 0, endpointCalls: 0, throttled: 0, retries: 0 },
    failedUnits: [],
    timings: { plan: 120, work: 4000, finalize: 300 },
    ...overrides,
  };
}
