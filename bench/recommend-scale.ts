/**
 * Recommendations at scale (issue 17, "Scale and skew"): a LOCAL RUN of a recommend
 * pipeline through the real engine (`bin/sluice.js run`: ingest units -> the streaming
 * merge -> index files -> similarity shards planned by estimated work -> finalize), in a
 * child process started with the heap flags and allocator setting `bin/sluice.js` gives
 * `run`, its peak RSS taken by /usr/bin/time. Beside it, in the same bench run: the actual
 * cost of every user (the same core over the run's own index file) summed over the run's
 * work-planned shards and over naive equal-user-count ranges, and the SciPy peer
 * (scripts/peers/user-cf.py, Debian's /usr/bin/python3) on the same CSV.
 *
 *   npm run bench -- recommend-scale                                   # 10M interactions (200k users, 50k items)
 *   SLUICE_BENCH_REC_SCALE_SIZES=1000000,3000000 npm run bench -- recommend-scale   # growth across sizes
 *   SLUICE_BENCH_REC_SCALE_PEER=0 ... (peer off)   SLUICE_BENCH_REC_SCALE_COSTS=0 ... (per-user cost pass off)
 *
 * Data: events/generate-interactions.ts (latent tastes, Zipf items, log-normal activity,
 * 5 power users holding 30% of the catalogue each), users = n/50, items = n/200,
 * implicit, seed 23; kept in SLUICE_BENCH_REC_SCALE_DATA (default
 * /tmp/sluice-bench-recommend-scale) so a rerun does not generate it again.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type InteractionModel, writeInteractionsCsv } from '../events/generate-interactions.ts';
import type { RunSummary } from '../shared/domain/types.ts';
import { hotItemSample, similarityPostings } from '../shared/jobs/recommend/hot-item-cap.ts';
import { decodeInteractionIndex } from '../shared/jobs/recommend/index-codec.ts';
import type { IngestManifest } from '../shared/jobs/recommend/ingest-stage.ts';
import { estimateUserWork, planNaiveShards } from '../shared/jobs/recommend/shard-plan.ts';
import { UserCfShard } from '../shared/jobs/recommend/user-cf.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const PEER = path.join(root, 'scripts', 'peers', 'user-cf.py');
const PYTHON = '/usr/bin/python3';
/** What bin/sluice.js starts `run` with (HEAP_FLAGS and ALLOCATOR_ENV there). */
const RUN_HEAP_FLAGS = ['--max-semi-space-size=4', '--max-old-space-size=192'];
const RSS_TARGET_MIB = 1536;
const BALANCE_TARGET = 1.25;
const TARGET_INTERACTIONS = 10_000_000;

interface PlanCost {
  readonly shards: number;
  readonly max: number;
  readonly mean: number;
  readonly maxOverMean: number;
}

export interface ScaleRun {
  readonly measuredAt: string;
  readonly data: InteractionModel & {
    readonly rows: number;
    readonly csvMiB: number;
    readonly generatedMs: number | 'reused';
  };
  readonly pipeline: {
    readonly maxItemUsers: number;
    readonly targetUnitTokens: number;
    readonly targetUnitWork: number;
  };
  readonly run: {
    readonly status: string;
    readonly wallMs: number;
    readonly peakRssMiB: number;
    readonly threads: number;
    readonly units: Record<string, number>;
    readonly interactions: number;
    readonly duplicates: number;
    readonly users: number;
    readonly items: number;
    readonly cappedItems: number;
    readonly shards: { readonly estimatedMaxOverMean: number; readonly actualMaxOverMean: number };
    readonly loadAverageBeforeAfter: readonly [number, number];
  };
  /** The planner's estimated work (cheap, always measured), summed per plan: the run's shards and naive ranges. */
  readonly shardEstimate: { readonly workPlanned: PlanCost; readonly naiveByUserCount: PlanCost };
  /** Per-user actual cost (operations) from the same core over the run's index, summed per plan. */
  readonly shardCost?: {
    readonly coreSingleThreadMs: number;
    readonly workPlanned: PlanCost;
    readonly naiveByUserCount: PlanCost;
  };
  readonly peer:
    | {
        readonly ran: true;
        readonly wallMs: number;
        readonly computeMs: number;
        readonly runOverPeerWall: number;
        readonly coreOverPeerCompute?: number;
        readonly sameLists?: number;
      }
    | { readonly ran: false; readonly note: string };
}

export interface RecommendScaleResult {
  readonly name: 'recommend-scale';
  readonly runs: readonly ScaleRun[];
  readonly targets: {
    readonly interactions: number;
    readonly measuredInteractions: number;
    readonly peakRssMiB: number;
    readonly shardMaxOverMean: number;
    readonly rssMet: boolean;
    readonly balanceMet: boolean;
    /** Both targets held on the largest run, and that run had the 10M interactions. */
    readonly met: boolean;
  };
}

export async function runRecommendScaleBench(): Promise<RecommendScaleResult> {
  const env = (name: string, fallback: string) => process.env[`SLUICE_BENCH_REC_SCALE_${name}`] ?? fallback;
  const sizes = env('SIZES', String(TARGET_INTERACTIONS)).split(',').map(Number);
  const dataDir = env('DATA', path.join(tmpdir(), 'sluice-bench-recommend-scale'));
  await mkdir(dataDir, { recursive: true });
  // Runs of other sizes from the last results file are kept (each with its own measuredAt),
  // so growth across sizes can be measured one size per invocation.
  const runs: ScaleRun[] = previousRuns().filter((r) => !sizes.includes(r.data.interactions));
  for (const size of sizes) {
    runs.push(
      await scaleRun(size, dataDir, {
        maxItemUsers: Number(env('MAX_ITEM_USERS', '2000')),
        peer: env('PEER', '1') === '1',
        costs: env('COSTS', '1') === '1',
      }),
    );
    console.error(`recommend-scale ${size}: ${JSON.stringify(runs.at(-1))}`);
  }
  runs.sort((a, b) => a.data.interactions - b.data.interactions);
  const last = runs.at(-1)!;
  const rssMet = last.run.peakRssMiB <= RSS_TARGET_MIB;
  const balanceMet = last.run.shards.actualMaxOverMean <= BALANCE_TARGET;
  return {
    name: 'recommend-scale',
    runs,
    targets: {
      interactions: TARGET_INTERACTIONS,
      measuredInteractions: last.data.rows,
      peakRssMiB: RSS_TARGET_MIB,
      shardMaxOverMean: BALANCE_TARGET,
      rssMet,
      balanceMet,
      met: rssMet && balanceMet && last.data.interactions >= TARGET_INTERACTIONS,
    },
  };
}

async function scaleRun(
  size: number,
  dataDir: string,
  options: { maxItemUsers: number; peer: boolean; costs: boolean },
): Promise<ScaleRun> {
  const model: InteractionModel = {
    users: Math.round(size / 50),
    items: Math.round(size / 200),
    interactions: size,
    powerUsers: 5,
    powerUserShare: 0.3,
    explicit: false,
    seed: 23,
  };
  const file = path.join(dataDir, `interactions-${model.users}u-${model.items}i-${size}-s${model.seed}.csv`);
  let generatedMs: number | 'reused' = 'reused';
  if (!existsSync(file)) {
    const started = performance.now();
    await writeInteractionsCsv(`${file}.partial`, model);
    await rename(`${file}.partial`, file);
    generatedMs = Math.round(performance.now() - started);
  }
  const rows = countLines(file) - 1;
  const csvBytes = statSync(file).size;
  const work = await mkdtemp(path.join(tmpdir(), 'sluice-recommend-scale-'));
  try {
    // About 12 ingest units (a recommend record costs 1; the planner rounds up to whole
    // waves of workers); shard work sized for a few dozen shards.
    const targetUnitTokens = Math.ceil(rows / 12);
    const targetUnitWork = Math.max(1_000_000, Math.round(size * 12));
    const pipeline = {
      name: 'scale',
      kind: 'recommend',
      input: { format: 'csv', userField: 'user_id', itemField: 'item_id', timestampField: 'ts' },
      neighbours: {
        k: 40,
        shrinkage: 10,
        minCommonItems: 2,
        minNeighbours: 2,
        maxItemUsers: options.maxItemUsers,
      },
      output: { table: 'recommendations', topN: 20 },
      // No holdout: the run fits on every interaction, as the peer does.
      evaluation: { holdoutFraction: 0 },
      sharding: { targetUnitWork, method: 'greedy' },
      planning: { targetUnitTokens },
      run: { toleratedRejectPercent: 0 },
    };
    await mkdir(path.join(work, 'pipelines'));
    await writeFile(path.join(work, 'pipelines', 'scale.json'), JSON.stringify(pipeline));
    const home = path.join(work, 'home');
    const loadBefore = os.loadavg()[0]!;
    const measured = await timedRun(
      [
        ...RUN_HEAP_FLAGS,
        path.join(root, 'bin', 'sluice.js'),
        'run',
        file,
        '--pipeline',
        'scale',
        '--pipelines',
        path.join(work, 'pipelines'),
        '--home',
        home,
        '--json',
      ],
      path.join(work, 'run.log'),
    );
    const loadAfter = os.loadavg()[0]!;
    const summary = JSON.parse(measured.stdout) as RunSummary;
    const recs = summary.recommendations!;
    const runFigures: ScaleRun['run'] = {
      status: summary.status,
      wallMs: measured.wallMs,
      peakRssMiB: measured.maxRssMiB,
      threads: Math.max(1, Math.min(os.availableParallelism() - 1, 8)),
      units: Object.fromEntries((summary.stages ?? []).map((s) => [s.name, s.units])),
      interactions: recs.interactions,
      duplicates: recs.duplicates,
      users: recs.users,
      items: recs.items,
      cappedItems: recs.cappedItems,
      shards: {
        estimatedMaxOverMean: recs.shards.estimatedMaxOverMean,
        actualMaxOverMean: recs.shards.actualMaxOverMean,
      },
      loadAverageBeforeAfter: [round(loadBefore), round(loadAfter)],
    };
    const staging = path.join(home, 'bucket', 'runs', 'scale', summary.runId, 'recommend');
    const estimated = await estimatedPlans(staging, options.maxItemUsers);
    const costs = options.costs ? await perUserCosts(staging, pipeline.neighbours) : undefined;
    const peer = options.peer
      ? await peerRun(file, work, options.maxItemUsers, measured.wallMs, costs)
      : ({ ran: false, note: 'SLUICE_BENCH_REC_SCALE_PEER=0' } as const);
    return {
      measuredAt: new Date().toISOString(),
      data: { ...model, rows, csvMiB: round(csvBytes / 2 ** 20), generatedMs },
      pipeline: { maxItemUsers: options.maxItemUsers, targetUnitTokens, targetUnitWork },
      run: runFigures,
      shardEstimate: estimated,
      ...(costs ? { shardCost: costs.figures } : {}),
      peer,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The run as a child process under /usr/bin/time: its stdout, wall time and peak RSS. */
async function timedRun(
  nodeArgs: readonly string[],
  logFile: string,
): Promise<{ stdout: string; wallMs: number; maxRssMiB: number }> {
  const rssFile = `${logFile}.rss`;
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, process.execPath, ...nodeArgs], {
    cwd: root,
    env: { MALLOC_ARENA_MAX: '2', ...process.env, SLUICE_HEAP_SET: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(logFile);
  child.stderr.pipe(log);
  const out: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  const wallMs = Math.round(performance.now() - started);
  if (code !== 0) {
    const tail = (await readFile(logFile, 'utf8')).split('\n').slice(-15).join('\n');
    throw new Error(`sluice run exited ${code}:\n${tail}`);
  }
  const maxRssKiB = Number((await readFile(rssFile, 'utf8')).trim().split('\n').at(-1));
  return { stdout: Buffer.concat(out).toString('utf8'), wallMs, maxRssMiB: Math.round(maxRssKiB / 1024) };
}

/**
 * Every user's actual cost (the operations the shard computer counts) by the same core
 * over the run's own index file, summed over the run's shards and over naive user-id
 * ranges of equal user count (the same number of shards). Single thread, in this process.
 */
async function perUserCosts(
  staging: string,
  neighbours: {
    k: number;
    shrinkage: number;
    minCommonItems: number;
    minNeighbours: number;
    maxItemUsers: number;
  },
) {
  const manifest = JSON.parse(await readFile(path.join(staging, 'ingest.json'), 'utf8')) as IngestManifest;
  const index = decodeInteractionIndex(await readFile(path.join(staging, 'index.bin')));
  const shardBytes = await readFile(path.join(staging, 'shards.bin'));
  const started = performance.now();
  const postings = similarityPostings(index, manifest.similarity, neighbours.maxItemUsers);
  const computer = new UserCfShard(index, postings, { ...neighbours, topN: 20 });
  const nUsers = index.userIds.length;
  const cost = new Float64Array(nUsers);
  const lists: string[] = new Array(nUsers);
  for (let u = 0; u < nUsers; u++) {
    const before = computer.operations;
    const list = computer.recommend(u);
    cost[u] = Math.max(1, computer.operations - before);
    lists[u] = Array.from(list.items, (i) => index.itemIds[i]).join(',');
  }
  const coreSingleThreadMs = Math.round(performance.now() - started);
  const planned = manifest.shards.map((shard) => {
    let sum = 0;
    for (let at = shard.byteStart; at < shard.byteEnd; at += 4) sum += cost[shardBytes.readInt32LE(at)]!;
    return sum;
  });
  const count = manifest.shards.length;
  const naive = Array.from({ length: count }, (_, s) => {
    let sum = 0;
    for (let u = Math.floor((s * nUsers) / count); u < Math.floor(((s + 1) * nUsers) / count); u++)
      sum += cost[u]!;
    return sum;
  });
  return {
    figures: { coreSingleThreadMs, workPlanned: planCost(planned), naiveByUserCount: planCost(naive) },
    userIds: index.userIds,
    lists,
  };
}

/** The planner's per-user work estimate over the run's index, summed over its shards and over naive ranges. */
async function estimatedPlans(staging: string, maxItemUsers: number) {
  const manifest = JSON.parse(await readFile(path.join(staging, 'ingest.json'), 'utf8')) as IngestManifest;
  const index = decodeInteractionIndex(await readFile(path.join(staging, 'index.bin')));
  const work = estimateUserWork(index, hotItemSample(index, maxItemUsers));
  return {
    workPlanned: planCost(manifest.shards.map((s) => s.estimatedWork)),
    naiveByUserCount: planCost(planNaiveShards(work, manifest.shards.length).map((s) => s.estimatedWork)),
  };
}

function planCost(costs: readonly number[]): PlanCost {
  const max = Math.max(...costs);
  const mean = costs.reduce((a, b) => a + b, 0) / costs.length;
  return { shards: costs.length, max, mean: Math.round(mean), maxOverMean: round(max / mean) };
}

async function peerRun(
  file: string,
  work: string,
  maxItemUsers: number,
  runWallMs: number,
  costs:
    | { figures: { coreSingleThreadMs: number }; userIds: readonly string[]; lists: readonly string[] }
    | undefined,
): Promise<ScaleRun['peer']> {
  const out = path.join(work, 'peer.json');
  const started = performance.now();
  const result = spawnSync(
    PYTHON,
    [
      PEER,
      file,
      '--timestamp',
      'ts',
      '--max-item-users',
      String(maxItemUsers),
      '--no-neighbours',
      '--out',
      out,
    ],
    { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 },
  );
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
  const computeMs = Math.round(peer.seconds.compute * 1000);
  let sameLists: number | undefined;
  if (costs) {
    let same = 0;
    costs.userIds.forEach((userId, u) => {
      if (peer.users[userId]?.list.map(([item]) => item).join(',') === costs.lists[u]) same++;
    });
    sameLists = round(same / costs.userIds.length);
  }
  return {
    ran: true,
    wallMs,
    computeMs,
    runOverPeerWall: round(runWallMs / wallMs),
    ...(costs
      ? { coreOverPeerCompute: round(costs.figures.coreSingleThreadMs / Math.max(1, computeMs)), sameLists }
      : {}),
  };
}

function previousRuns(): ScaleRun[] {
  const file = path.join(root, 'bench', 'results', 'recommend-scale.json');
  if (!existsSync(file)) return [];
  const previous = JSON.parse(readFileSync(file, 'utf8')) as { runs?: ScaleRun[]; measuredAt?: string };
  return (previous.runs ?? []).map((r) => ({
    ...r,
    measuredAt: r.measuredAt ?? previous.measuredAt ?? 'unknown',
  }));
}

function countLines(file: string): number {
  const result = spawnSync('wc', ['-l', file], { encoding: 'utf8' });
  return Number(result.stdout.trim().split(/\s+/)[0]);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
