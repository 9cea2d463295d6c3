import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  type ComparedSource,
  collectVanished,
  outcomeWithoutDiff,
  type SourceOutcome,
} from '../../shared/incremental/compare-source.ts';
import type { DocEntry } from '../../shared/incremental/doc-lines.ts';
import { RunDocLists } from '../../shared/incremental/run-doc-lists.ts';
import { pointerAfter } from '../../shared/incremental/settle-moves.ts';
import { coverSources, eligibleSources, skipAllRead } from '../../shared/incremental/source-coverage.ts';
import { type ManifestPointer, SOURCE_MANIFEST_FORMAT } from '../../shared/incremental/source-manifest.ts';
import { summarize } from '../../shared/incremental/summarize-comparison.ts';
import {
  CandidateBudget,
  PendingVanished,
  SETTLE_BATCH,
  SettleVanished,
  VanishedTally,
} from '../../shared/incremental/vanished-documents.ts';
import { A, aRun, B, C, COMPARED_AT, PIPELINE, runIdOf, startedAtOf } from './factories.ts';

const RUN = { runId: runIdOf(5), pipeline: PIPELINE, startedAt: startedAtOf(runIdOf(5)) };

function pointer(runId: string, extra: Partial<ManifestPointer> = {}): ManifestPointer {
  return {
    format: SOURCE_MANIFEST_FORMAT,
    sourceKey: A,
    runId,
    runStartedAt: startedAtOf(runId),
    slot: 0,
    segments: [],
    docs: 3,
    chunks: 6,
    removedDocuments: 1,
    removedChunks: 2,
    writtenAt: COMPARED_AT.toISOString(),
    previous: null,
    ...extra,
  };
}

function compared(sourceKey: string, tally = new VanishedTally(), unreadable?: string): ComparedSource {
  return {
    kind: 'compared',
    sourceKey,
    previous: undefined,
    next: { runId: RUN.runId, runStartedAt: RUN.startedAt, slot: 1, segments: [], docs: 4, chunks: 9 },
    tally,
    candidates: [],
    ...(unreadable === undefined ? {} : { unreadable }),
  };
}

async function* docs(entries: readonly DocEntry[], failAfter?: number): AsyncGenerator<DocEntry> {
  let n = 0;
  for (const entry of entries) {
    if (n === failAfter) throw new Error('read failed');
    n += 1;
    yield entry;
  }
}

describe('source coverage', () => {
  it('groups units by every source they read and skips a source any unit did not read whole', async () => {
    const store = new MemoryObjectStore();
    const units = await aRun(store, RUN.runId, [
      { unitId: 'u0', docs: { [A]: [['a', 1]], [B]: [['b', 1]] } },
      { unitId: 'u1', docs: { [B]: [['c', 1]] }, status: 'failed' },
      { unitId: 'u2', docs: { [C]: [['d', 1]] } },
    ]);
    const coverage = coverSources(units);
    expect([...coverage.unitsOf].map(([key, us]) => [key, us.map((u) => u.unitId)])).toEqual([
      [A, ['u0']],
      [B, ['u0', 'u1']],
      [C, ['u2']],
    ]);
    expect([...coverage.skipped]).toEqual([[B, 'unit u1 failed: this run did not read the whole source']]);
    expect(eligibleSources(coverage, new Set(['incoming/docs/0-gone.jsonl']))).toEqual([
      'incoming/docs/0-gone.jsonl',
      A,
      C,
    ]);
    skipAllRead(coverage, 'no list');
    expect([...coverage.skipped.values()]).toEqual([
      'unit u1 failed: this run did not read the whole source',
      'no list',
      'no list',
    ]);
  });

  it('skips the source of a unit stored without its descriptor, naming why', () => {
    const { descriptor: _, ...bare } = {
      unitId: 'u9',
      sourceKey: A,
      byteStart: 0,
      byteEnd: 1,
      estCost: 1,
      packedFiles: 0,
      actualCost: null,
      records: null,
      status: 'succeeded' as const,
      attempts: 1,
      lastError: null,
      descriptor: undefined,
    };
    const coverage = coverSources([bare as never]);
    expect(coverage.skipped.get(A)).toMatch(/stored without its descriptor/);
  });
});

describe('what a pointer settles without a diff', () => {
  it('diffs a source with no pointer, and knows nothing of one deleted before any run completed it', () => {
    expect(outcomeWithoutDiff(RUN, A, undefined, false)).toBeUndefined();
    expect(outcomeWithoutDiff(RUN, A, undefined, true)).toEqual({ kind: 'unknown', sourceKey: A });
  });

  it('reuses the counts this run stored, even under a later flip', () => {
    const mine = pointer(RUN.runId);
    expect(outcomeWithoutDiff(RUN, A, mine, false)).toMatchObject({
      kind: 'reused',
      version: { runId: RUN.runId, removedDocuments: 1 },
    });
    const later = pointer(runIdOf(9), { previous: { ...mine, removedDocuments: 7 } });
    expect(outcomeWithoutDiff(RUN, A, later, false)).toMatchObject({
      kind: 'reused',
      version: { removedDocuments: 7 },
    });
  });

  it('leaves alone a manifest a later-started run replaced, and diffs one an earlier run wrote', () => {
    expect(outcomeWithoutDiff(RUN, A, pointer(runIdOf(9)), false)).toMatchObject({
      kind: 'skipped',
      reason: `run ${runIdOf(9)}, which started later, already replaced its manifest`,
    });
    expect(outcomeWithoutDiff(RUN, A, pointer(runIdOf(1)), false)).toBeUndefined();
  });
});

describe('vanished documents', () => {
  it('a candidate budget runs out for good, even after a source gives its share back', () => {
    const budget = new CandidateBudget(2);
    expect([budget.take(), budget.take(), budget.overflow]).toEqual([true, true, false]);
    expect(budget.take()).toBe(false);
    budget.release(2);
    expect([budget.take(), budget.overflow]).toEqual([false, true]);
  });

  it('a pending document vanished from two sources is rescued for both when a doc list holds it', () => {
    const [a, b] = [new VanishedTally(), new VanishedTally()];
    const pending = new PendingVanished();
    pending.hold({ id: 'x', chunks: 2 }, a);
    pending.hold({ id: 'x', chunks: 3 }, b);
    pending.hold({ id: 'y', chunks: 1 }, a);
    expect([pending.held, pending.size]).toEqual([3, 2]);
    pending.rescue('x');
    pending.rescue('nobody');
    expect([a.rescuedDocs, a.rescuedChunks, b.rescuedDocs, b.rescuedChunks, pending.size]).toEqual([
      1, 2, 1, 3, 1,
    ]);
  });

  it('settling rescues what the chunk index places outside the run and forgets the rest, in batches', async () => {
    const forgotten: string[][] = [];
    const tally = new VanishedTally();
    const settler = new SettleVanished(
      {
        forget: async (ids) => void forgotten.push(ids),
        lastSourceOf: async (ids) =>
          new Map(
            ids.map((id) => [
              id,
              id === 'moved' ? 'incoming/docs/elsewhere.jsonl' : id === 'in-run' ? B : undefined,
            ]),
          ),
      },
      new Set([A, B]),
    );
    await settler.add('moved', tally, 4);
    await settler.add('in-run', tally, 1);
    await settler.add('gone', tally, 2);
    expect(forgotten).toEqual([]);
    await settler.flush();
    expect(forgotten).toEqual([['in-run', 'gone']]);
    expect([tally.rescuedDocs, tally.rescuedChunks]).toEqual([1, 4]);
    for (let i = 0; i < SETTLE_BATCH; i += 1) await settler.add(`d${i}`, tally, 1);
    expect(forgotten).toHaveLength(2);
  });

  it('settling without a chunk index to ask holds nothing', async () => {
    const tally = new VanishedTally();
    const settler = new SettleVanished({}, new Set());
    await settler.add('x', tally, 1);
    await settler.flush();
    expect(tally.rescuedDocs).toBe(0);
  });

  it('collecting counts every vanished document and drops the held list once the budget is spent', async () => {
    const budget = new CandidateBudget(2);
    const outcome = compared(A);
    const gone = [
      { id: 'a', chunks: 1 },
      { id: 'b', chunks: 2 },
      { id: 'c', chunks: 3 },
    ];
    await collectVanished(docs(gone), outcome, undefined, budget);
    expect([outcome.tally.candidateDocs, outcome.tally.candidateChunks]).toEqual([3, 6]);
    expect(outcome.candidates).toBeUndefined();
    expect(budget.overflow).toBe(true);
  });

  it('collecting gives the budget back when the diff fails, so the retried source can hold again', async () => {
    const budget = new CandidateBudget(2);
    const outcome = compared(A);
    const gone = [
      { id: 'a', chunks: 1 },
      { id: 'b', chunks: 1 },
    ];
    await expect(collectVanished(docs(gone, 2), outcome, undefined, budget)).resolves.toBeUndefined();
    const retry = compared(A);
    await expect(
      collectVanished(docs([...gone, { id: 'c', chunks: 1 }], 2), retry, undefined, budget),
    ).rejects.toThrow('read failed');
    expect(budget.take()).toBe(false); // the first source kept its two
    const fresh = new CandidateBudget(1);
    await expect(collectVanished(docs(gone, 1), compared(A), undefined, fresh)).rejects.toThrow(
      'read failed',
    );
    expect(fresh.take()).toBe(true);
  });
});

describe('the run doc lists', () => {
  it('reads every succeeded unit, names the unlisted ones, and tells where moves are possible', async () => {
    const store = new MemoryObjectStore();
    const units = await aRun(store, RUN.runId, [
      { unitId: 'u0', docs: { [A]: [['a', 1]] }, alsoRead: [C] },
      { unitId: 'u1', docs: { [A]: [['b', 2]], [B]: [['c', 1]] } },
      { unitId: 'u3', docs: { [B]: [['d', 1]] }, listed: false },
      { unitId: 'u2', docs: { [B]: [['e', 1]] }, listed: false },
      { unitId: 'u4', docs: { [C]: [['f', 1]] }, status: 'failed' },
    ]);
    const lists = await RunDocLists.read(store, RUN, units, 4);
    expect(lists.unlisted).toEqual(['u2', 'u3']);
    expect([lists.docsIn(A), lists.docsIn(B), lists.docsIn(C)]).toEqual([2, 1, 0]);
    expect(lists.sectionsOf(A, units.slice(0, 2)).map((s) => s.section.docs)).toEqual([1, 1]);
    expect([lists.movesPossibleFrom(A), lists.movesPossibleFrom(C)]).toEqual([true, true]);
    const alone = await RunDocLists.read(store, RUN, units.slice(0, 1), 4);
    expect([alone.movesPossibleFrom(A), alone.movesPossibleFrom(C)]).toEqual([false, true]);
  });

  it('rescues the pending documents some doc list of the run holds', async () => {
    const store = new MemoryObjectStore();
    const units = await aRun(store, RUN.runId, [{ unitId: 'u0', docs: { [B]: [['moved', 2]] } }]);
    const lists = await RunDocLists.read(store, RUN, units, 4);
    const tally = new VanishedTally();
    const pending = new PendingVanished();
    pending.hold({ id: 'moved', chunks: 2 }, tally);
    pending.hold({ id: 'gone', chunks: 1 }, tally);
    await lists.rescueListed(pending, 64, 2);
    expect([pending.size, tally.rescuedDocs, tally.rescuedChunks]).toEqual([1, 1, 2]);
  });
});

describe('pointers and the summary', () => {
  it('a flipped pointer records the removals, or none when the old manifest was unreadable', () => {
    const tally = new VanishedTally();
    tally.vanished(3);
    tally.vanished(2);
    tally.rescued(2);
    expect(pointerAfter(compared(A, tally), COMPARED_AT)).toMatchObject({
      sourceKey: A,
      slot: 1,
      docs: 4,
      removedDocuments: 1,
      removedChunks: 3,
      previous: null,
    });
    expect(pointerAfter(compared(A, tally, 'broken'), COMPARED_AT)).toMatchObject({
      removedDocuments: 0,
      removedChunks: 0,
    });
  });

  it('sums compared and reused sources, lists skipped ones with why, rows sorted by key', () => {
    const tally = new VanishedTally();
    tally.vanished(5);
    const outcomes: SourceOutcome[] = [
      compared(C, tally),
      { kind: 'reused', sourceKey: B, version: pointer(RUN.runId) },
      compared('incoming/docs/d.jsonl', new VanishedTally(), 'its stored manifest was unreadable (x)'),
      { kind: 'skipped', sourceKey: 'incoming/docs/0.jsonl', reason: 'late' },
      { kind: 'unknown', sourceKey: 'incoming/docs/e.jsonl' },
    ];
    const summary = summarize(outcomes, new Map([[A, 'failed unit']]), new Set([C]));
    expect(summary).toMatchObject({
      compared: 1,
      deleted: 1,
      reused: 1,
      removedDocuments: 2,
      removedChunks: 7,
    });
    expect(summary.skipped).toEqual([
      { sourceKey: 'incoming/docs/0.jsonl', reason: 'late' },
      { sourceKey: A, reason: 'failed unit' },
      {
        sourceKey: 'incoming/docs/d.jsonl',
        reason: 'its stored manifest was unreadable (x): replaced, removals not counted',
      },
    ]);
    expect(summary.sources.map((r) => [r.source_key, r.status, r.removed_documents])).toEqual([
      ['incoming/docs/0.jsonl', 'skipped', 0],
      [A, 'skipped', 0],
      [B, 'read', 1],
      [C, 'deleted', 1],
      ['incoming/docs/d.jsonl', 'skipped', 0],
    ]);
  });
});
