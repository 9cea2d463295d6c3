import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type RecommendPipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunState, UnitState } from '../../shared/domain/types.ts';
import { encodeArrays, writeArrays } from '../../shared/jobs/recommend/array-file.ts';
import { splitHoldout } from '../../shared/jobs/recommend/evaluation.ts';
import { hotItemSample, similarityPostings } from '../../shared/jobs/recommend/hot-item-cap.ts';
import { encodeInteractionIndex, writeInteractionIndex } from '../../shared/jobs/recommend/index-codec.ts';
import { mergeIngestUnits } from '../../shared/jobs/recommend/ingest-stage.ts';
import type { Interaction } from '../../shared/jobs/recommend/interaction.ts';
import { buildInteractionIndex } from '../../shared/jobs/recommend/interaction-index.ts';
import {
  type Feedback,
  type InteractionLog,
  InteractionLogBuilder,
} from '../../shared/jobs/recommend/interaction-log.ts';
import { encodeHoldOut, encodeInteractionLog } from '../../shared/jobs/recommend/log-codec.ts';
import { type LogMergeOptions, mergeLogParts } from '../../shared/jobs/recommend/log-merge.ts';
import {
  holdoutKey,
  indexKey,
  ingestManifestKey,
  ingestPartKey,
} from '../../shared/jobs/recommend/recommend-keys.ts';
import type { ObjectStore, ObjectWrite } from '../../shared/ports/object-store.ts';

/** A seeded generator (mulberry32), so every case is the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Interactions with many duplicate pairs (the same pair in several units, with later,
 * equal and absent timestamps, and tied values), users and items some units never see.
 */
function generated(seed: number, count: number): Interaction[] {
  const rand = random(seed);
  const out: Interaction[] = [];
  for (let k = 0; k < count; k++) {
    const user = Math.floor(rand() ** 2 * 40);
    const item = Math.floor(rand() ** 3 * 60);
    const timestamp = rand() < 0.15 ? undefined : 1_700_000_000 + Math.floor(rand() * 20) * 3600;
    out.push({
      userId: `u${user}`,
      itemId: `i${String(item).padStart(rand() < 0.5 ? 2 : 3, '0')}`,
      value: 1 + Math.floor(rand() * 5),
      ...(timestamp === undefined ? {} : { timestamp }),
    });
  }
  return out;
}

/** The interactions cut into `parts` unit logs of uneven sizes, each deduplicated within itself. */
async function unitLogs(
  store: ObjectStore,
  rows: readonly Interaction[],
  parts: number,
  feedback: Feedback,
  keyOf: (part: number) => string,
): Promise<string[]> {
  const rand = random(parts);
  const cuts = [0, ...Array.from({ length: parts - 1 }, () => Math.floor(rand() * rows.length)), rows.length];
  cuts.sort((a, b) => a - b);
  const keys: string[] = [];
  for (let p = 0; p < parts; p++) {
    const builder = new InteractionLogBuilder(feedback);
    for (const row of rows.slice(cuts[p], cuts[p + 1])) builder.add(row);
    await store.put(keyOf(p), encodeInteractionLog(builder.build().log));
    keys.push(keyOf(p));
  }
  return keys;
}

function inMemory(rows: readonly Interaction[], feedback: Feedback): InteractionLog {
  const builder = new InteractionLogBuilder(feedback);
  for (const row of rows) builder.add(row);
  return builder.build().log;
}

/** The merge's output gathered back into a log. */
async function merged(
  store: ObjectStore,
  keys: readonly string[],
  feedback: Feedback,
  options: LogMergeOptions,
) {
  const userPtr: number[] = [0];
  const items: number[] = [];
  const values: number[] = [];
  const timestamps: number[] = [];
  const result = await mergeLogParts(store, keys, options, {
    start: () => {},
    user: (user, row) => {
      expect(user).toBe(userPtr.length - 1);
      items.push(...row.items);
      values.push(...row.values);
      timestamps.push(...row.timestamps);
      userPtr.push(items.length);
    },
  });
  const log: InteractionLog = {
    feedback,
    userIds: result.userIds,
    itemIds: result.itemIds,
    userPtr: Int32Array.from(userPtr),
    items: Int32Array.from(items),
    values: Float64Array.from(values),
    timestamps: Float64Array.from(timestamps),
  };
  return { log, result };
}

/** A store that records the largest single read, and refuses whole-object reads of unit logs. */
class WatchedStore extends MemoryObjectStore {
  largestRange = 0;
  override get(key: string) {
    if (key.includes('/ingest/')) throw new Error(`whole read of ${key}`);
    return super.get(key);
  }
  override async *readRange(key: string, start: number, end?: number) {
    const size = (await this.head(key))?.size ?? 0;
    this.largestRange = Math.max(this.largestRange, (end ?? size) - start);
    yield* super.readRange(key, start, end);
  }
}

describe('mergeLogParts (the ingest merge of unit logs)', () => {
  it.each([
    ['explicit', 5, { fanIn: 2, windowEntries: 3 }],
    ['explicit', 9, { fanIn: 3, windowEntries: 1 }],
    ['explicit', 4, {}],
    ['implicit', 7, { fanIn: 2, windowEntries: 5 }],
    ['explicit', 1, { fanIn: 2, windowEntries: 2 }],
  ] as [Feedback, number, { fanIn?: number; windowEntries?: number }][])(
    '%s feedback, %i units, %j: the log the in-memory builder gives on every interaction',
    async (feedback, parts, options) => {
      const rows = generated(parts * 7 + (feedback === 'explicit' ? 1 : 2), 900);
      const store = new WatchedStore();
      const keys = await unitLogs(store, rows, parts, feedback, (p) => `runs/p/r/recommend/ingest/u${p}.bin`);
      const { log, result } = await merged(store, keys, feedback, {
        ...options,
        spillPrefix: 'runs/p/r/spill/',
      });
      expect(log).toEqual(inMemory(rows, feedback));
      expect(result.kept).toBe(log.items.length);
      if (parts > 1) expect(result.inputEntries).toBeGreaterThan(result.kept);
      // More units than the fan-in went through spill runs; windows bound every read of a unit log.
      expect(result.spillRuns > 0).toBe(parts > (options.fanIn ?? 32));
      if (options.windowEntries !== undefined) expect(store.largestRange).toBeLessThan(2000);
    },
  );

  it('merges no units into an empty log', async () => {
    const { log, result } = await merged(new MemoryObjectStore(), [], 'explicit', { spillPrefix: 's/' });
    expect(log.userIds).toEqual([]);
    expect(result.kept).toBe(0);
  });

  it('keeps the contract pair of duplicates spread over units, whatever unit holds which', async () => {
    const rows: Interaction[] = [
      { userId: 'a', itemId: 'x', value: 2, timestamp: 10 },
      { userId: 'a', itemId: 'x', value: 5 },
      { userId: 'a', itemId: 'x', value: 1, timestamp: 20 },
      { userId: 'a', itemId: 'x', value: 3, timestamp: 20 },
      { userId: 'b', itemId: 'x', value: 4 },
      { userId: 'b', itemId: 'x', value: 2 },
    ];
    for (const order of [rows, [...rows].reverse()]) {
      const store = new MemoryObjectStore();
      const keys: string[] = [];
      for (const [k, row] of order.entries()) {
        await store.put(`u${k}`, encodeInteractionLog(inMemory([row], 'explicit')));
        keys.push(`u${k}`);
      }
      const { log } = await merged(store, keys, 'explicit', {
        spillPrefix: 's/',
        fanIn: 2,
        windowEntries: 1,
      });
      expect(Array.from(log.values)).toEqual([3, 4]);
      expect(Array.from(log.timestamps)).toEqual([20, Number.NaN]);
    }
  });
});

describe('mergeIngestUnits (the ingest stage merge)', () => {
  const run = { runId: 'r1', pipeline: 'recs' } as RunState;

  function configOf(extra: Record<string, unknown>): RecommendPipelineConfig {
    return parsePipelineConfig({
      name: 'recs',
      kind: 'recommend',
      input: { format: 'csv', timestampField: 'ts', valueField: 'rating' },
      evaluation: { holdoutFraction: 0.25, minUserItems: 3 },
      sharding: { targetUnitWork: 500 },
      ...extra,
    }) as RecommendPipelineConfig;
  }

  it.each([
    ['holdout, cap', { neighbours: { maxItemUsers: 6 } }],
    ['no holdout', { evaluation: { holdoutFraction: 0 } }],
  ] as [string, Record<string, unknown>][])(
    '%s: writes the index, holdout and plan the in-memory merge wrote, reading unit logs in windows',
    async (_, extra) => {
      const config = configOf(extra);
      const rows = generated(41, 1500);
      const store = new WatchedStore();
      const unitIds = Array.from({ length: 6 }, (_, k) => `unit-${k}`);
      await unitLogs(store, rows, unitIds.length, 'explicit', (p) =>
        ingestPartKey('recs', 'r1', unitIds[p]!),
      );
      const units = unitIds.map(
        (unitId) =>
          ({ unitId, status: 'succeeded', counts: { records: 250, rejected: 0 } }) as unknown as UnitState,
      );
      await mergeIngestUnits({ store }, config, run, units, { fanIn: 4, windowEntries: 7 });
      expect(store.largestRange).toBeLessThan(4096);

      // What the stage wrote before: the whole log built in memory, split, indexed.
      const log = inMemory(rows, 'explicit');
      const evaluate = config.evaluation.holdoutFraction > 0;
      const { train, holdOut } = evaluate
        ? splitHoldout(log, config.evaluation)
        : { train: log, holdOut: undefined };
      const index = buildInteractionIndex(train);
      expect(Buffer.from((await store.get(indexKey('recs', 'r1')))!)).toEqual(encodeInteractionIndex(index));
      if (holdOut)
        expect(Buffer.from((await store.get(holdoutKey('recs', 'r1')))!)).toEqual(encodeHoldOut(holdOut));
      else expect(await store.get(holdoutKey('recs', 'r1'))).toBeUndefined();
      const manifest = JSON.parse(
        new TextDecoder().decode((await store.get(ingestManifestKey('recs', 'r1')))!),
      );
      const postings = similarityPostings(index, 'pearson', config.neighbours.maxItemUsers);
      expect(manifest).toMatchObject({
        records: 1500,
        interactions: log.items.length,
        duplicates: 1500 - log.items.length,
        users: log.userIds.length,
        items: log.itemIds.length,
        cappedItems: postings.cappedItems,
        heldOut: holdOut?.items.length ?? 0,
      });
      if (extra.neighbours) expect(manifest.cappedItems).toBeGreaterThan(0);
    },
  );
});

describe('hotItemSample', () => {
  it('flags the entries similarityPostings keeps, on both sides of the index', () => {
    const index = buildInteractionIndex(inMemory(generated(5, 2000), 'explicit'));
    const sample = hotItemSample(index, 5);
    const postings = similarityPostings(index, 'cosine', 5);
    expect(sample.cappedItems).toBeGreaterThan(0);
    expect(sample.itemPtr).toEqual(postings.itemPtr);
    expect(sample.userSampled).toEqual(postings.userSampled);
  });
});

describe('writeArrays', () => {
  it('writes the bytes encodeArrays encodes, piece by piece', async () => {
    const pieces: Uint8Array[] = [];
    const out: ObjectWrite = {
      write: async (bytes) => {
        pieces.push(Uint8Array.from(bytes));
      },
      finish: async () => {},
      abort: async () => {},
    };
    const ints = [Int32Array.of(1, -2, 3), Int32Array.of()];
    const floats = [Float64Array.of(0.5, Number.NaN), Float64Array.of(-1)];
    await writeArrays(out, 0x12345678, [1, 2, 3, 4], ints, floats, ['a', 'é', '']);
    expect(Buffer.concat(pieces)).toEqual(
      encodeArrays(0x12345678, [1, 2, 3, 4], ints, floats, ['a', 'é', '']),
    );

    pieces.length = 0;
    const index = buildInteractionIndex(inMemory(generated(9, 500), 'explicit'));
    await writeInteractionIndex(out, index);
    expect(Buffer.concat(pieces)).toEqual(encodeInteractionIndex(index));
  });
});
