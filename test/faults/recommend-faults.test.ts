import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePipelineConfig, type RecommendPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { decodeInteractionIndex } from '../../shared/jobs/recommend/index-codec.ts';
import { decodeHoldOut } from '../../shared/jobs/recommend/log-codec.ts';
import { holdoutKey, indexKey } from '../../shared/jobs/recommend/recommend-keys.ts';
import { runSummaryKey } from '../../shared/output/keys.ts';
import {
  type FaultJob,
  type FaultRunOptions,
  type FaultRunReport,
  type FaultScenario,
  runWithFaults,
} from './support/fault-harness.ts';
import { type InputFile, type MixedInputs, seededRandom } from './support/mixed-inputs.ts';
import { redriveRun } from './support/redrive-run.ts';
import { readTable } from './support/run-tables.ts';

const PIPELINE = 'faults-recommend';

/** Explicit ratings with timestamps (pearson), a holdout, and a hot-item cap some items exceed. */
const RAW_CONFIG = {
  name: PIPELINE,
  kind: 'recommend',
  input: {
    format: 'csv',
    userField: 'user_id',
    itemField: 'item_id',
    valueField: 'rating',
    timestampField: 'ts',
  },
  neighbours: { k: 10, shrinkage: 5, minCommonItems: 2, minNeighbours: 2, maxItemUsers: 20 },
  output: { table: 'recommendations', topN: 8 },
  evaluation: { holdoutFraction: 0.2, minUserItems: 6 },
  // A few thousand postings per shard: about five similarity units.
  sharding: { targetUnitWork: 3_000, method: 'greedy' },
  // About 300 rows per ingest unit: the big file is cut into several.
  planning: { targetUnitTokens: 600 },
  workers: { maxConcurrency: 4, maxReceiveCount: 5 },
  // The drop mixes in bad rows on purpose; these runs judge accounting, not the reject share.
  run: { toleratedRejectPercent: 100 },
} as const;

const recommendFaultConfig = (): RecommendPipelineConfig =>
  parsePipelineConfig(RAW_CONFIG) as RecommendPipelineConfig;

/** A kept interaction: what the merge must have resolved a (user, item) pair's rows to. */
interface KeptPair {
  value: number;
  timestamp: number;
}

/** The drop, and what every one of its rows must become. */
interface InteractionInputs extends MixedInputs {
  /** `user\u0000item` -> the value the duplicate-pair rule keeps. */
  readonly pairs: Map<string, KeptPair>;
  /** Data rows (header lines excluded), good and bad. */
  readonly rows: number;
  /** Good rows that repeat a pair (resolved away by the rule). */
  readonly duplicateRows: number;
}

const pairKey = (user: string, item: string) => `${user}\u0000${item}`;

/**
 * A seeded interaction log with structure CF can find: 72 users in four taste groups, each
 * group rating its own 20 of 90 items high, plus a popular head every group touches (so a
 * few items exceed the hot-item cap). Bad rows of every kind the ingest stage rejects, and
 * duplicate pairs within the big file (other units) and in a second, late file: later
 * timestamps win, ties keep the larger rating.
 */
function interactionInputs(seed: number, options: { prefix: string }): InteractionInputs {
  const random = seededRandom(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pairs = new Map<string, KeptPair>();
  const good = new Map<string, string>();
  const bad = new Map<string, string>();
  const files: InputFile[] = [];
  const written: { user: string; item: string }[] = [];
  let rows = 0;
  let duplicateRows = 0;
  const keep = (key: string, user: string, item: string, value: number, timestamp: number) => {
    const k = pairKey(user, item);
    const kept = pairs.get(k);
    if (kept) duplicateRows += 1;
    if (!kept || timestamp > kept.timestamp || (timestamp === kept.timestamp && value > kept.value)) {
      pairs.set(k, { value, timestamp });
      good.set(k, key);
    }
    written.push({ user, item });
  };
  const BAD_ROWS: readonly ((u: string, i: string) => readonly [string, string])[] = [
    (_u, i) => [`,${i},4,1767225600`, 'missing user (field user_id)'],
    (u) => [`${u},,3,1767225600`, 'missing item (field item_id)'],
    (u, i) => [`${u},${i},five,1767225600`, 'non-numeric value "five" (field rating)'],
    (u, i) => [`${u},${i},2,yesterday`, 'bad timestamp "yesterday"'],
  ];
  const file = (name: string, lineCount: number, repeatShare: number) => {
    const key = `${options.prefix}${name}`;
    const lines = ['user_id,item_id,rating,ts'];
    while (lines.length <= lineCount) {
      const roll = random();
      const group = int(4);
      const user = `u${String(group * 18 + int(18)).padStart(3, '0')}`;
      if (roll < 0.05) {
        const [line, reason] = BAD_ROWS[int(BAD_ROWS.length)]!(user, `i${String(int(90)).padStart(3, '0')}`);
        lines.push(line);
        bad.set(`${key}:${lines.length}`, reason);
        continue;
      }
      let item: string;
      let owner = user;
      if (roll < 0.05 + repeatShare && written.length > 0) {
        // A pair written before, rated again: the same second sometimes (a tie on the rating).
        const earlier = written[int(written.length)]!;
        owner = earlier.user;
        item = earlier.item;
      } else {
        const head = random() < 0.25;
        const n = head ? int(6) : 6 + ((group * 20 + int(20) + (random() < 0.15 ? int(84) : 0)) % 84);
        item = `i${String(n).padStart(3, '0')}`;
      }
      const own = Number(item.slice(1)) >= 6 + group * 20 && Number(item.slice(1)) < 26 + group * 20;
      const rating = Math.min(5, Math.max(1, (own ? 4 : 2) + int(3) - 1));
      const timestamp = 1_767_225_600 + 3_600 * int(48);
      lines.push(`${owner},${item},${rating},${timestamp}`);
      keep(key, owner, item, rating, timestamp);
    }
    rows += lines.length - 1;
    files.push({ key, body: new TextEncoder().encode(`${lines.join('\n')}\n`) });
  };
  file(`interactions-${seed}.csv`, 1_500, 0.04);
  file(`late-${seed}.csv`, 160, 0.5);
  return { files, good, bad, pairs, rows, duplicateRows };
}

const RECOMMEND_FAULT_JOB: FaultJob = {
  config: recommendFaultConfig,
  resultTable: 'recommendations',
  inputs: interactionInputs,
};

/** A table's rows without the run id, in a stable order. */
const withoutRunId = (rows: readonly Record<string, unknown>[]) =>
  rows
    .map(({ run_id: _run, ...row }) => JSON.stringify(row))
    .sort()
    .map((row) => JSON.parse(row) as Record<string, unknown>);

/**
 * Every interaction row ends in exactly one place: a bad row in `rejects` once with its
 * reason, a good one in the run's index (training values, or held out), its pair once, at
 * the value the duplicate-pair rule keeps. The summary, `summary.json` and the `runs` row
 * count what the tables hold; the recommendations hold every indexed user once, ranks 1..n.
 */
async function expectEveryInteractionOnce(report: FaultRunReport, label: string) {
  const inputs = report.inputs as InteractionInputs;
  const { store, runId, summary } = report;

  const rejects = await readTable(store, 'rejects', PIPELINE, runId);
  const rejected = rejects.map((row) => `${row.source_key}:${Number(row.line)}`);
  expect(rejected.length, `${label}: no row rejected twice`).toBe(new Set(rejected).size);
  expect([...rejected].sort(), `${label}: rows in rejects`).toEqual([...inputs.bad.keys()].sort());
  for (const row of rejects) {
    const key = `${row.source_key}:${Number(row.line)}`;
    expect(String(row.reason), `${label}: reason of ${key}`).toContain(inputs.bad.get(key));
  }

  const indexBytes = await store.get(indexKey(PIPELINE, runId));
  const holdoutBytes = await store.get(holdoutKey(PIPELINE, runId));
  expect(indexBytes && holdoutBytes, `${label}: index and holdout written`).toBeTruthy();
  const index = decodeInteractionIndex(indexBytes!);
  const holdOut = decodeHoldOut(holdoutBytes!);
  const indexed = new Map<string, number | 'held out'>();
  const place = (user: number, item: number, value: number | 'held out') => {
    const k = pairKey(index.userIds[user]!, index.itemIds[item]!);
    expect(indexed.has(k), `${label}: pair ${k} indexed once`).toBe(false);
    indexed.set(k, value);
  };
  for (let u = 0; u < index.userIds.length; u++) {
    for (let e = index.userPtr[u]!; e < index.userPtr[u + 1]!; e++)
      place(u, index.userItems[e]!, index.userValues[e]!);
    for (let e = holdOut.userPtr[u]!; e < holdOut.userPtr[u + 1]!; e++)
      place(u, holdOut.items[e]!, 'held out');
  }
  expect([...indexed.keys()].sort(), `${label}: pairs in the index`).toEqual([...inputs.pairs.keys()].sort());
  for (const [k, value] of indexed)
    if (value !== 'held out') expect(value, `${label}: value kept for ${k}`).toBe(inputs.pairs.get(k)!.value);

  const recs = summary.recommendations!;
  expect(summary.status, `${label}: status`).toBe('succeeded');
  expect(summary.failedUnits).toEqual([]);
  expect(summary.counts, `${label}: summary counts`).toMatchObject({
    records: inputs.rows,
    rejected: inputs.bad.size,
    failedUnits: 0,
  });
  expect(recs, `${label}: interactions and duplicates`).toMatchObject({
    interactions: inputs.pairs.size,
    duplicates: inputs.duplicateRows,
    users: index.userIds.length,
  });
  expect(recs.evaluation?.heldOut, `${label}: held out`).toBe(holdOut.items.length);
  expect(recs.interactions + recs.duplicates + inputs.bad.size, `${label}: every row counted once`).toBe(
    inputs.rows,
  );

  const rows = await readTable(store, 'recommendations', PIPELINE, runId);
  const ranks = new Map<string, number[]>();
  for (const row of rows)
    ranks.set(String(row.user_id), [...(ranks.get(String(row.user_id)) ?? []), Number(row.rank)]);
  expect([...ranks.keys()].sort(), `${label}: every indexed user listed`).toEqual([...index.userIds].sort());
  for (const [user, list] of ranks) {
    const sorted = [...list].sort((a, b) => a - b);
    expect(sorted, `${label}: ranks of ${user} (1..n, none twice)`).toEqual(sorted.map((_, i) => i + 1));
  }
  const listed = rows.map((row) => pairKey(String(row.user_id), String(row.item_id)));
  expect(new Set(listed).size, `${label}: no item twice in a list`).toBe(rows.length);
  expect(recs.rows, `${label}: rows counted`).toBe(rows.length);
  expect(recs.usersRecommended, `${label}: users counted`).toBe(ranks.size);

  const stored = JSON.parse(new TextDecoder().decode(await store.get(runSummaryKey(PIPELINE, runId))));
  const { finishedAt: _f, timings: _t, ...same } = summary;
  expect(stored, `${label}: summary.json`).toMatchObject(same);
  const runRows = await readTable(store, 'runs', PIPELINE, runId);
  expect(
    runRows.map((r) => ({ status: r.status, records: Number(r.records), rejected: Number(r.rejected) })),
    `${label}: runs row`,
  ).toEqual([{ status: 'succeeded', records: summary.counts.records, rejected: summary.counts.rejected }]);
  return rows;
}

/** A finalize that dies on every attempt (more than its messages have receives). */
const ALWAYS = 1_000;

const SCENARIOS: FaultScenario[] = [
  {
    seed: 201,
    store: 'memory',
    duplicateDelivery: true,
    crashBeforeWrite: 1,
    crashAfterWrite: 1,
    laterStage: { crashBeforeWrite: 1, crashAfterWrite: 2 },
    stageMoveCrash: { at: 'after-move', times: 1 },
  },
  // Every attempt of the finalize dies: it is dead-lettered, and the run is left running.
  { seed: 202, store: 'fs', stageMoveCrash: { at: 'before-move', times: ALWAYS } },
  {
    seed: 203,
    store: 'memory',
    duplicateDelivery: true,
    dieEveryDelivery: true,
    stageMoveCrash: { at: 'after-move', times: 1 },
  },
  {
    seed: 204,
    store: 'fs',
    duplicateDelivery: true,
    laterStage: { dieEveryDelivery: true, crashAfterWrite: 1 },
    stageMoveCrash: { at: 'before-send', times: 1 },
  },
];

function describeScenario(s: FaultScenario): string {
  const later = s.laterStage;
  const faults = [
    s.duplicateDelivery && 'duplicate deliveries',
    s.crashBeforeWrite && `ingest crash before write x${s.crashBeforeWrite}`,
    s.crashAfterWrite && `ingest crash after write x${s.crashAfterWrite}`,
    s.dieEveryDelivery && 'an ingest worker dies on every delivery, then redrive',
    later?.crashBeforeWrite && `shard crash before write x${later.crashBeforeWrite}`,
    later?.crashAfterWrite && `shard crash after write x${later.crashAfterWrite}`,
    later?.dieEveryDelivery && 'a shard worker dies on every delivery, then sluice redrive',
    s.stageMoveCrash &&
      `finalize dies ${s.stageMoveCrash.at} into similarity ${s.stageMoveCrash.times === ALWAYS ? 'on every attempt, then sluice redrive --resume' : `x${s.stageMoveCrash.times}`}`,
  ].filter(Boolean);
  return `seed ${s.seed} (${s.store}): ${faults.join(', ')}`;
}

describe('recommend under faults: the ingest -> similarity hand-off', () => {
  let work: string;
  let pipelines: string;
  let inputs: InteractionInputs;
  let reference: FaultRunReport;
  let referenceRows: Record<string, unknown>[];
  const totals = { crashes: 0, deaths: 0, stageMoveCrashes: 0, redriven: 0, resumed: 0 };

  /** `sluice redrive RUN_ID [--resume]` on the run's folder, as a person would run it. */
  const cliRedrive: FaultRunOptions['redrive'] = async ({ dir, runId, resume }) => {
    const result = await redriveRun(runId, { home: dir, pipelines }, { resume });
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(result.json().status).toBe('succeeded');
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-recommend-faults-'));
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, `${PIPELINE}.json`), JSON.stringify(RAW_CONFIG));
    inputs = interactionInputs(17, { prefix: `incoming/${PIPELINE}/` });
    reference = await runWithFaults({ seed: 200, store: 'memory' }, undefined, {
      job: RECOMMEND_FAULT_JOB,
      inputs,
    });
    referenceRows = withoutRunId(await expectEveryInteractionOnce(reference, 'fault-free run'));
  }, 60_000);
  afterAll(async () => {
    await reference?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('has a fault-free reference with several units in each stage, capped items and duplicate pairs', () => {
    const { summary } = reference;
    expect(summary.stages?.map((s) => [s.name, s.units])).toEqual([
      ['ingest', reference.units.length],
      ['similarity', summary.recommendations!.shards.count],
    ]);
    expect(reference.units.length).toBeGreaterThanOrEqual(4);
    expect(summary.recommendations!.shards.count).toBeGreaterThanOrEqual(3);
    expect(summary.recommendations!.cappedItems).toBeGreaterThan(0);
    expect(inputs.duplicateRows).toBeGreaterThan(20);
    expect(inputs.bad.size).toBeGreaterThan(20);
    expect(referenceRows.some((row) => row.source === 'cf')).toBe(true);
  });

  it.each(SCENARIOS.map((s) => [describeScenario(s), s] as const))('%s', async (_name, scenario) => {
    const label = `seed ${scenario.seed}`;
    const viaCli = scenario.store === 'fs';
    const report = await runWithFaults(scenario, undefined, {
      job: RECOMMEND_FAULT_JOB,
      inputs,
      ...(viaCli ? { redrive: cliRedrive } : {}),
    });
    try {
      totals.crashes += report.injected.crashes;
      totals.deaths += report.injected.deaths;
      totals.stageMoveCrashes += report.injected.stageMoveCrashes;
      const dies = scenario.dieEveryDelivery || scenario.laterStage?.dieEveryDelivery;
      const resumes = (scenario.stageMoveCrash?.times ?? 0) >= ALWAYS;
      expect(report.redrive, `${label}: taken up again`).toBe(
        dies ? 'failed-units' : resumes ? 'resume' : 'none',
      );
      if (report.redrive === 'failed-units') {
        totals.redriven += 1;
        const failed = report.failedSummary!;
        expect(failed.status, `${label}: first finalize`).toBe('failed');
        expect(failed.failedUnits, `${label}: the dead unit`).toHaveLength(1);
        expect(failed.stages?.at(-1)?.name, `${label}: failed in`).toBe(
          scenario.dieEveryDelivery ? 'ingest' : 'similarity',
        );
        expect(report.finalizeMoves, `${label}: the failed run finalized once`).toBe(1);
      } else
        expect(report.finalizeMoves, `${label}: finalize moved the run once`).toBe(
          report.redrive === 'resume' && viaCli ? 0 : 1,
        );
      if (report.redrive === 'resume') totals.resumed += 1;
      if (scenario.stageMoveCrash?.times === ALWAYS)
        expect(report.injected.stageMoveCrashes, `${label}: finalize deaths`).toBeGreaterThanOrEqual(
          RAW_CONFIG.workers.maxReceiveCount,
        );
      else if (scenario.stageMoveCrash)
        expect(report.injected.stageMoveCrashes, `${label}: finalize deaths`).toBe(
          scenario.stageMoveCrash.times,
        );
      if (scenario.duplicateDelivery)
        expect(report.deliveries, `${label}: deliveries`).toBeGreaterThanOrEqual(2 * report.units.length);

      const rows = await expectEveryInteractionOnce(report, label);
      // What a run without faults wrote: the same users with the same lists, the same counts.
      expect(withoutRunId(rows), `${label}: recommendations`).toEqual(referenceRows);
      expect(report.summary.counts, `${label}: counts`).toEqual(reference.summary.counts);
      expect(report.summary.recommendations, `${label}: recommendations summary`).toEqual(
        reference.summary.recommendations,
      );
      expect(report.summary.stages, `${label}: stages`).toEqual(reference.summary.stages);
    } finally {
      await report.cleanup();
    }
  });

  it('injected every kind of fault across the runs', () => {
    const unitCrashes = SCENARIOS.reduce(
      (n, s) =>
        n +
        (s.crashBeforeWrite ?? 0) +
        (s.crashAfterWrite ?? 0) +
        (s.laterStage?.crashBeforeWrite ?? 0) +
        (s.laterStage?.crashAfterWrite ?? 0),
      0,
    );
    expect(totals.crashes).toBe(unitCrashes);
    expect(totals.deaths).toBeGreaterThanOrEqual(2 * RAW_CONFIG.workers.maxReceiveCount);
    expect(totals.stageMoveCrashes).toBeGreaterThanOrEqual(
      SCENARIOS.filter((s) => s.stageMoveCrash && s.stageMoveCrash.times < ALWAYS).length +
        RAW_CONFIG.workers.maxReceiveCount,
    );
    expect(totals.redriven).toBe(2);
    expect(totals.resumed).toBe(1);
  });
});
