import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { RunState, RunSummary } from '../../shared/domain/types.ts';
import { runSummaryKey, unitPartKey } from '../../shared/output/keys.ts';
import { rejectsParquet } from '../../shared/output/parquet-tables.ts';
import type { RunStore, StoredUnit } from '../../shared/ports/run-store.ts';
import { loadRunReportData, RunNotFound, writeRunReport } from '../../shared/report/load-run-report.ts';
import { reportCharts } from '../../shared/report/report-charts.ts';

const RUN_ID = 'r-20261207T050000Z-abc123';

const runState = (status: RunState['status']): RunState => ({
  runId: RUN_ID,
  pipeline: 'credit-risk',
  trigger: 'local',
  startedAt: '2026-12-07T05:00:00.000Z',
  inputs: ['incoming/credit-risk/a.csv'],
  status,
  finishedAt: status === 'running' ? null : '2026-12-07T05:00:09.000Z',
  totalUnits: 2,
  doneUnits: 1,
  failedUnits: 0,
});

const storedUnit = (unitId: string, stage: string, over: Partial<StoredUnit> = {}): StoredUnit => ({
  unitId,
  stage,
  sourceKey: 'incoming/credit-risk/a.csv',
  byteStart: 0,
  byteEnd: 100,
  estCost: 50,
  packedFiles: 0,
  actualCost: null,
  records: null,
  status: 'pending',
  attempts: 0,
  lastError: null,
  counts: null,
  outputKeys: [],
  ...over,
});

/** A run store holding one run, its units and (maybe) its summary: what the loader reads. */
function runStoreOf(run: RunState, units: StoredUnit[], summary?: RunSummary): RunStore {
  return {
    getRun: async (runId: string) => (runId === run.runId ? run : undefined),
    listUnits: async () => units,
    getSummary: async () => summary,
  } as Partial<RunStore> as RunStore;
}

const reject = (reason: string, line: number) => ({
  source_key: 'incoming/credit-risk/a.csv',
  byte_offset: line * 10,
  line,
  reason,
  excerpt: '',
});

describe('loadRunReportData', () => {
  it('counts the run’s rejects by kind from every rejects part of the run, and no other run’s', async () => {
    const store = new MemoryObjectStore();
    await store.put(
      unitPartKey('rejects', 'credit-risk', RUN_ID, 'u00000'),
      rejectsParquet(RUN_ID, [
        reject('CSV row has 3 fields, the header has 4', 2),
        reject('malformed: x', 3),
      ]),
    );
    await store.put(
      unitPartKey('rejects', 'credit-risk', RUN_ID, 'duplicates'),
      rejectsParquet(RUN_ID, [reject('CSV row has 5 fields, the header has 4', 9)]),
    );
    const other = 'r-20261207T060000Z-def456';
    await store.put(
      unitPartKey('rejects', 'credit-risk', other, 'u00000'),
      rejectsParquet(other, [reject('malformed: y', 1)]),
    );
    const data = await loadRunReportData(
      { runs: runStoreOf(runState('running'), [storedUnit('u00000', 'score')]), store },
      RUN_ID,
    );
    // Parts are read in key order: the duplicates part comes before u00000's.
    expect(data.rejects).toEqual([
      {
        kind: 'CSV row has N fields, the header has N',
        count: 2,
        example: 'CSV row has 5 fields, the header has 4',
      },
      { kind: 'malformed', count: 1, example: 'malformed: x' },
    ]);
    // Still running: no summary, and the charts say so instead of drawing nothing.
    expect(data.summary).toBeUndefined();
    expect(reportCharts(data).find((c) => c.id === 'cost')!.note).toMatch(/not finished/);
  });

  it('takes the summary from the bucket’s summary.json where the run store has none', async () => {
    const store = new MemoryObjectStore();
    const summary = { runId: RUN_ID, pipeline: 'credit-risk', status: 'succeeded' } as RunSummary;
    await store.put(runSummaryKey('credit-risk', RUN_ID), JSON.stringify(summary));
    const data = await loadRunReportData({ runs: runStoreOf(runState('succeeded'), []), store }, RUN_ID);
    expect(data.summary).toEqual(summary);
  });

  it('draws the units of each stage as their own points, each in its stage’s measure', async () => {
    const units = [
      storedUnit('f00000', 'fit', { status: 'succeeded', actualCost: 40, estCost: 45 }),
      storedUnit('u00000', 'score', { status: 'succeeded', actualCost: 320, estCost: 300 }),
    ];
    const data = await loadRunReportData(
      { runs: runStoreOf(runState('succeeded'), units), store: new MemoryObjectStore() },
      RUN_ID,
    );
    const datasets = reportCharts(data).find((c) => c.id === 'unit-cost')!.config!.data.datasets;
    expect(datasets.map((d) => d.label)).toEqual([
      'fit units (records)',
      'score units (rows × features)',
      'measured = estimated',
    ]);
  });

  it('refuses a run the store does not hold, and writes nothing', async () => {
    const store = new MemoryObjectStore();
    const ports = { runs: runStoreOf(runState('succeeded'), []), store };
    await expect(writeRunReport(ports, 'r-20200101T000000Z-000000', { chartJs: '' })).rejects.toBeInstanceOf(
      RunNotFound,
    );
    expect(store.objects.size).toBe(0);
  });
});
