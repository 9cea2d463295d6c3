import { expect } from 'vitest';
import type { RunSummary } from '../../../shared/domain/types.ts';
import { runSummaryKey } from '../../../shared/output/keys.ts';
import type { ObjectStore } from '../../../shared/ports/object-store.ts';
import type { MixedInputs } from './mixed-inputs.ts';
import { readTable } from './run-tables.ts';

export interface RunUnderCheck {
  readonly runId: string;
  readonly pipeline: string;
  readonly store: ObjectStore;
  readonly inputs: MixedInputs;
  readonly summary: RunSummary;
  readonly units: number;
  /** Prefixes failure messages, e.g. the seed. */
  readonly label: string;
}

/**
 * The promise, checked record by record: every good input record is in `embeddings` with
 * all of its chunks (indexes 0..n-1, none twice), every bad one is in `rejects` once with
 * its reason, nothing else is in either table, and the run summary (and `summary.json`,
 * and the `runs` row) count exactly what the tables hold.
 */
export async function expectEveryRecordOnce(run: RunUnderCheck): Promise<void> {
  const { label, inputs, summary } = run;
  const embeddings = await readTable(run.store, 'embeddings', run.pipeline, run.runId);
  const rejects = await readTable(run.store, 'rejects', run.pipeline, run.runId);

  const chunksByDoc = new Map<string, number[]>();
  for (const row of embeddings) {
    const docId = String(row.doc_id);
    expect(row.chunk_id, `${label}: chunk id of ${docId}`).toBe(`${docId}#${row.chunk_index}`);
    expect(row.source_key, `${label}: source of ${docId}`).toBe(inputs.good.get(docId));
    chunksByDoc.set(docId, [...(chunksByDoc.get(docId) ?? []), Number(row.chunk_index)]);
  }
  expect([...chunksByDoc.keys()].sort(), `${label}: documents in embeddings`).toEqual(
    [...inputs.good.keys()].sort(),
  );
  for (const [docId, indexes] of chunksByDoc) {
    const sorted = [...indexes].sort((a, b) => a - b);
    expect(sorted, `${label}: chunks of ${docId} (contiguous, none twice)`).toEqual(sorted.map((_, i) => i));
  }

  const rejected = rejects.map((row) => `${row.source_key}:${Number(row.line)}`);
  expect(rejected.length, `${label}: no record rejected twice`).toBe(new Set(rejected).size);
  expect([...rejected].sort(), `${label}: records in rejects`).toEqual([...inputs.bad.keys()].sort());
  for (const row of rejects) {
    const key = `${row.source_key}:${Number(row.line)}`;
    expect(String(row.reason), `${label}: reason of ${key}`).toContain(inputs.bad.get(key));
  }

  expect(summary.status, `${label}: status`).toBe('succeeded');
  expect(summary.counts, `${label}: summary counts`).toMatchObject({
    records: inputs.good.size + inputs.bad.size,
    rejected: rejects.length,
    units: run.units,
    failedUnits: 0,
    chunks: embeddings.length,
  });
  expect(summary.counts.embedded + summary.counts.skippedUnchanged, `${label}: embedded chunks`).toBe(
    embeddings.length,
  );
  expect(summary.failedUnits).toEqual([]);
  // summary.json says what the run store says. Not finishedAt and timings: a duplicate
  // finalize that loses the conditional move has written its own copy before losing
  // (finalizeRun writes summary.json and the runs row before finishRun; see docs/runbook.md).
  const stored = JSON.parse(
    new TextDecoder().decode(await run.store.get(runSummaryKey(run.pipeline, run.runId))),
  );
  const { finishedAt: _f, timings: _t, ...same } = summary;
  expect(stored, `${label}: summary.json`).toMatchObject(same);
  const rows = await readTable(run.store, 'runs', run.pipeline, run.runId);
  expect(
    rows.map((r) => ({ status: r.status, records: Number(r.records), rejected: Number(r.rejected) })),
  ).toEqual([{ status: 'succeeded', records: summary.counts.records, rejected: summary.counts.rejected }]);
}
