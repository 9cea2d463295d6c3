/**
 * Recommendations (issue 17), library level: the recommend job kind's pure stages in one
 * process on a generated Zipf-shaped log (latent tastes, a few power users), beside
 * naive by-user-count sharding, the popularity baseline and the SciPy peer.
 *
 *   npm run bench -- recommend                       # default: 10k users, 2.5k items, ~300k interactions wanted
 *   SLUICE_BENCH_REC_USERS=200000 SLUICE_BENCH_REC_ITEMS=50000 \
 *   SLUICE_BENCH_REC_INTERACTIONS=10000000 SLUICE_BENCH_REC_PEER=0 npm run bench -- recommend
 *                                                    # the 10M case (hours on 2 cores; peer off)
 *
 * Figures: wall time per phase, peak RSS, max/mean actual shard cost (operations:
 * postings accumulated plus neighbour items scanned, counted per user and summed per
 * shard) for work-estimated greedy and contiguous plans and for naive equal-user-count
 * ranges, recall@20 etc. against the popularity baseline on a 20% time holdout, and the
 * SciPy peer's time on the same file (skipped with a note when /usr/bin/python3 lacks
 * numpy/scipy).
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type InteractionModel, writeInteractionsCsv } from '../events/generate-interactions.ts';
import {
  EvaluationAccumulator,
  type EvaluationSummary,
  mergeEvaluation,
  splitHoldout,
  summarizeEvaluation,
} from '../shared/jobs/recommend/evaluation.ts';
import { similarityPostings } from '../shared/jobs/recommend/hot-item-cap.ts';
import { encodeInteractionIndex } from '../shared/jobs/recommend/index-codec.ts';
import { parseInteraction } from '../shared/jobs/recommend/interaction.ts';
import {
  buildInteractionIndex,
  type InteractionIndex,
  popularityOrder,
} from '../shared/jobs/recommend/interaction-index.ts';
import { type InteractionLog, InteractionLogBuilder } from '../shared/jobs/recommend/interaction-log.ts';
import {
  parseRecommendSettings,
  type RecommendSettings,
  similarityOf,
} from '../shared/jobs/recommend/recommend-config.ts';
import {
  estimateUserWork,
  planNaiveShards,
  planWorkShards,
  type UserShard,
} from '../shared/jobs/recommend/shard-plan.ts';
import { popularityList, UserCfShard, type UserRecommendations } from '../shared/jobs/recommend/user-cf.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const PEER = path.join(root, 'scripts', 'peers', 'user-cf.py');
const PYTHON = '/usr/bin/python3';

interface ShardFigures {
  readonly shards: number;
  readonly maxOverMean: number;
  readonly max: number;
  readonly mean: number;
}

export interface RecommendBenchResult {
  readonly name: 'recommend';
  readonly data: InteractionModel & {
    readonly rows: number;
    readonly interactions: number;
    readonly duplicates: number;
    readonly maxItemUsers: number;
    readonly cappedItems: number;
    readonly largestItemUsers: number;
    readonly largestUserItems: number;
  };
  readonly settings: {
    readonly similarity: string;
    readonly k: number;
    readonly topN: number;
    readonly shards: number;
  };
  readonly wallMs: Record<string, number>;
  readonly peakRssMiB: number;
  readonly indexFileMiB: number;
  readonly shardCost: {
    readonly workGreedy: ShardFigures;
    readonly workContiguous: ShardFigures;
    readonly naiveByUserCount: ShardFigures;
    /** max/mean actual cost at more shards (a larger fleet): work-based greedy vs naive. */
    readonly sweep: readonly { shards: number; workGreedy: number; naiveByUserCount: number }[];
    /** Estimated vs actual cost per shard of the greedy plan (actual / estimated, min and max). */
    readonly estimateRatio: { readonly min: number; readonly max: number };
  };
  readonly quality: EvaluationSummary & {
    readonly recallOverPopularity: number;
    readonly holdoutFraction: number;
  };
  readonly sampleQuality: Record<string, { recallCf: number; recallPopular: number; ratio: number }>;
  readonly peer:
    | {
        readonly ran: true;
        readonly wallMs: number;
        readonly computeMs: number;
        readonly sluiceOverPeer: number;
        readonly sameLists: number;
      }
    | { readonly ran: false; readonly note: string };
  readonly targets: {
    readonly maxOverMean: number;
    readonly recallOverPopularity: number;
    readonly met: boolean;
  };
}

export async function runRecommendBench(): Promise<RecommendBenchResult> {
  const env = (name: string, fallback: number) => Number(process.env[`SLUICE_BENCH_REC_${name}`] ?? fallback);
  const model: InteractionModel = {
    users: env('USERS', 10_000),
    items: env('ITEMS', 2_500),
    interactions: env('INTERACTIONS', 300_000),
    powerUsers: env('POWER_USERS', 5),
    powerUserShare: 0.3,
    explicit: true,
    seed: 23,
  };
  const shardCount = env('SHARDS', 32);
  const runPeer = env('PEER', 1) === 1;
  const settings = parseRecommendSettings({
    kind: 'recommend',
    input: { timestampField: 'ts' },
    neighbours: { maxItemUsers: env('MAX_ITEM_USERS', 5000) },
    evaluation: { holdoutFraction: 0.2 },
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-recommend-'));
  try {
    const file = path.join(dir, 'interactions.csv');
    const wallMs: Record<string, number> = {};
    const time = async <T>(phase: string, f: () => T | Promise<T>): Promise<T> => {
      const started = performance.now();
      const result = await f();
      wallMs[phase] = Math.round(performance.now() - started);
      return result;
    };
    const rows = await time('generate', () => writeInteractionsCsv(file, model));
    const { log, duplicates } = await time('readAndDedupe', () => readLog(file, settings));
    // Full fit (what the peer computes too): index, cap, plan, all shards.
    const full = await time('fullFit', () => fitAll(log, settings, shardCount));
    const indexFileMiB = encodeInteractionIndex(full.index).byteLength / 2 ** 20;
    // Quality: fit on the training split, evaluate the held-out latest 20%.
    const quality = await time('holdoutFitAndEvaluate', () => evaluate(log, settings, shardCount));
    const peer = runPeer
      ? await time('peer', () => peerRun(file, dir, full))
      : { ran: false as const, note: 'SLUICE_BENCH_REC_PEER=0' };
    const sampleQuality = await time('sampleQuality', () => sampleFigures());
    const perUserOps = full.perUserOps;
    const figures = (shards: readonly UserShard[]): ShardFigures => {
      const costs = shards.map((s) => s.users.reduce((sum, u) => sum + perUserOps[u]!, 0));
      const max = Math.max(...costs);
      const mean = costs.reduce((a, b) => a + b, 0) / costs.length;
      return { shards: shards.length, max, mean: Math.round(mean), maxOverMean: round(max / mean) };
    };
    const greedy = figures(full.shards);
    const ratios = full.shards.map(
      (s) => s.users.reduce((sum, u) => sum + perUserOps[u]!, 0) / s.estimatedWork,
    );
    const recallOverPopularity = round(quality.cf.recall / quality.popular.recall);
    const counts = (ptr: Int32Array) =>
      Math.max(...Array.from({ length: ptr.length - 1 }, (_, k) => ptr[k + 1]! - ptr[k]!));
    return {
      name: 'recommend',
      data: {
        ...model,
        rows,
        interactions: log.items.length,
        duplicates,
        maxItemUsers: settings.neighbours.maxItemUsers,
        cappedItems: full.cappedItems,
        largestItemUsers: counts(full.index.itemPtr),
        largestUserItems: counts(full.index.userPtr),
      },
      settings: {
        similarity: similarityOf(settings),
        k: settings.neighbours.k,
        topN: settings.output.topN,
        shards: shardCount,
      },
      wallMs: { ...wallMs, ...full.wallMs },
      peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      indexFileMiB: round(indexFileMiB),
      shardCost: {
        workGreedy: greedy,
        workContiguous: figures(planWorkShards(full.work, shardCount, 'contiguous')),
        naiveByUserCount: figures(planNaiveShards(full.work, shardCount)),
        sweep: [128, 512, 2048].map((shards) => ({
          shards,
          workGreedy: figures(planWorkShards(full.work, shards, 'greedy')).maxOverMean,
          naiveByUserCount: figures(planNaiveShards(full.work, shards)).maxOverMean,
        })),
        estimateRatio: { min: round(Math.min(...ratios)), max: round(Math.max(...ratios)) },
      },
      quality: { ...quality, recallOverPopularity, holdoutFraction: settings.evaluation.holdoutFraction },
      sampleQuality,
      peer: peer.ran
        ? { ...peer, sluiceOverPeer: round((wallMs.fullFit ?? 0) / Math.max(1, peer.computeMs)) }
        : peer,
      targets: {
        maxOverMean: 1.25,
        recallOverPopularity: 1.5,
        met: greedy.maxOverMean <= 1.25 && recallOverPopularity >= 1.5,
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Streams the CSV through the same parse and dedupe the read stage runs. */
async function readLog(
  file: string,
  settings: RecommendSettings,
): Promise<{ log: InteractionLog; duplicates: number }> {
  const builder = new InteractionLogBuilder(settings.input.valueField ? 'explicit' : 'implicit');
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let header: string[] | undefined;
  for await (const line of lines) {
    if (header === undefined) {
      header = line.split(',');
      continue;
    }
    const cells = line.split(',');
    const record: Record<string, string> = {};
    header.forEach((name, k) => {
      record[name] = cells[k]!;
    });
    const parsed = parseInteraction(record, settings.input);
    if (!parsed.ok) throw new Error(`generated row rejected: ${parsed.reason}`);
    builder.add(parsed.interaction);
  }
  return builder.build();
}

function fitAll(log: InteractionLog, settings: RecommendSettings, shardCount: number) {
  const wallMs: Record<string, number> = {};
  let started = performance.now();
  const lap = (phase: string) => {
    wallMs[phase] = Math.round(performance.now() - started);
    started = performance.now();
  };
  const index = buildInteractionIndex(log);
  lap('fit.index');
  const postings = similarityPostings(index, similarityOf(settings), settings.neighbours.maxItemUsers);
  lap('fit.cap');
  const work = estimateUserWork(index, postings);
  const shards = planWorkShards(work, shardCount, settings.sharding.method);
  lap('fit.plan');
  const perUserOps = new Float64Array(index.userIds.length);
  const lists: UserRecommendations[] = new Array(index.userIds.length);
  const shardMs: number[] = [];
  for (const shard of shards) {
    const shardStarted = performance.now();
    const computer = new UserCfShard(index, postings, { ...settings.neighbours, topN: settings.output.topN });
    for (const user of shard.users) {
      const before = computer.operations;
      lists[user] = computer.recommend(user);
      perUserOps[user] = computer.operations - before;
    }
    shardMs.push(performance.now() - shardStarted);
  }
  lap('fit.shards');
  const meanMs = shardMs.reduce((a, b) => a + b, 0) / shardMs.length;
  wallMs['fit.shardMsMaxOverMean'] = round(Math.max(...shardMs) / meanMs);
  return { index, work, shards, perUserOps, lists, cappedItems: postings.cappedItems, wallMs };
}

function evaluate(log: InteractionLog, settings: RecommendSettings, shardCount: number): EvaluationSummary {
  const { train, holdOut } = splitHoldout(log, settings.evaluation);
  const index = buildInteractionIndex(train);
  const postings = similarityPostings(index, similarityOf(settings), settings.neighbours.maxItemUsers);
  const shards = planWorkShards(estimateUserWork(index, postings), shardCount, settings.sharding.method);
  const popular = popularityOrder(index);
  const partials = shards.map((shard) => {
    const computer = new UserCfShard(index, postings, { ...settings.neighbours, topN: settings.output.topN });
    const accumulator = new EvaluationAccumulator(settings.output.topN, index.itemIds);
    for (const user of shard.users) {
      const relevant = new Set(holdOut.items.subarray(holdOut.userPtr[user]!, holdOut.userPtr[user + 1]!));
      if (relevant.size === 0) continue;
      accumulator.add(
        relevant,
        computer.recommend(user).items,
        popularityList(index, popular, user, settings.output.topN),
      );
    }
    return accumulator.partial();
  });
  return summarizeEvaluation(mergeEvaluation(partials), popular.length);
}

/** recall@20 of CF and popularity on the committed sample, implicit (cosine) and explicit (pearson). */
async function sampleFigures(): Promise<RecommendBenchResult['sampleQuality']> {
  const out: RecommendBenchResult['sampleQuality'] = {};
  for (const valueField of [undefined, 'rating'] as const) {
    const settings = parseRecommendSettings({
      kind: 'recommend',
      input: { timestampField: 'ts', ...(valueField ? { valueField } : {}) },
      evaluation: { holdoutFraction: 0.2 },
    });
    const { log } = await readLog(path.join(root, 'events', 'data', 'interactions-sample.csv'), settings);
    const q = evaluate(log, settings, 4);
    out[valueField ? 'explicitPearson' : 'implicitCosine'] = {
      recallCf: round(q.cf.recall),
      recallPopular: round(q.popular.recall),
      ratio: round(q.cf.recall / q.popular.recall),
    };
  }
  return out;
}

function peerRun(
  file: string,
  dir: string,
  full: { index: InteractionIndex; lists: readonly UserRecommendations[] },
): RecommendBenchResult['peer'] {
  const out = path.join(dir, 'peer.json');
  const started = performance.now();
  const result = spawnSync(PYTHON, [PEER, file, '--timestamp', 'ts', '--no-neighbours', '--out', out], {
    encoding: 'utf8',
    maxBuffer: 16 * 2 ** 20,
  });
  const wallMs = Math.round(performance.now() - started);
  if (result.error || result.status !== 0)
    return {
      ran: false,
      note: `peer skipped: ${result.error?.message ?? result.stderr.trim().split('\n').at(-1)} (needs ${PYTHON} with python3-numpy and python3-scipy)`,
    };
  const peer = JSON.parse(readFileSync(out, 'utf8')) as {
    seconds: { compute: number };
    users: Record<string, { list: [string][] }>;
  };
  let same = 0;
  full.index.userIds.forEach((userId, u) => {
    const ours = Array.from(full.lists[u]!.items, (i) => full.index.itemIds[i]).join(',');
    if (peer.users[userId]?.list.map(([item]) => item).join(',') === ours) same++;
  });
  return {
    ran: true,
    wallMs,
    computeMs: Math.round(peer.seconds.compute * 1000),
    sluiceOverPeer: 0,
    sameLists: round(same / full.index.userIds.length),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
