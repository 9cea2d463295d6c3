import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { seededRandom } from '../events/generate-samples.ts';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.ts';
import { LocalRunStore } from '../shared/adapters/local/local-run-store.ts';
import { parsePipelineConfig } from '../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';
import { planRun } from '../shared/plan/plan-run.ts';
import { classifySource, estimateCost } from '../shared/plan/plan-units.ts';
import { documentCost } from '../shared/plan/sample-cost.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { readSourceRecords } from '../shared/readers/source-records.ts';
import { slicesOf } from '../shared/work/unit-records.ts';

const WORKERS = 50;
const RUN_ID = 'r-20260301T000000Z-5e1e55';

/** What one plan looks like and how it would run on the simulated fleet. */
export interface PlanFigures {
  readonly units: number;
  readonly estCost: { readonly max: number; readonly mean: number; readonly maxOverMean: number };
  readonly actualCost: { readonly max: number; readonly mean: number; readonly maxOverMean: number };
  /** Greedy list scheduling of the actual costs, in queue order, on `WORKERS` workers. */
  readonly makespan: number;
  readonly idealMakespan: number;
  readonly makespanOverIdeal: number;
}

export interface SkewResult {
  readonly name: 'skew';
  readonly drop: {
    readonly files: number;
    readonly bytes: number;
    readonly medianFileBytes: number;
    readonly largestFileBytes: number;
    readonly largestOverMedian: number;
    readonly gzipBytes: number;
    readonly gzipUncompressedBytes: number;
    readonly tinyFiles: number;
    readonly totalTokens: number;
  };
  readonly workers: number;
  readonly config: { readonly targetUnitTokens: number; readonly maxConcurrency: number };
  readonly sluice: PlanFigures & {
    readonly planning: {
      readonly ms: number;
      readonly sampledBytes: number;
      readonly cutPassBytes: number;
      readonly restagedBytesIn: number;
      readonly restagedBytesOut: number;
      readonly timings: Record<string, number>;
    };
    /** Actual / estimated cost per unit. */
    readonly estimateError: { readonly p50: number; readonly min: number; readonly max: number };
  };
  readonly naive: PlanFigures & { readonly description: string };
  readonly targets: {
    readonly maxOverMeanActual: number;
    readonly makespanOverIdeal: number;
    readonly met: boolean;
  };
}

class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  async sendUnits(units: readonly WorkUnit[]): Promise<void> {
    this.units.push(...units);
  }
  async requestFinalize(): Promise<void> {}
}

function stats(values: readonly number[]): { max: number; mean: number; maxOverMean: number } {
  const max = Math.max(...values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return { max: Math.round(max), mean: Math.round(mean), maxOverMean: round(max / mean) };
}

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Greedy list scheduling: each unit, in queue order, goes to the worker that is free first. */
export function makespan(costs: readonly number[], workers: number): number {
  const free = new Array<number>(workers).fill(0);
  for (const cost of costs) {
    let best = 0;
    for (let w = 1; w < workers; w += 1) if (free[w]! < free[best]!) best = w;
    free[best]! += cost;
  }
  return Math.max(...free);
}

function figures(est: readonly number[], actual: readonly number[]): PlanFigures {
  const total = actual.reduce((a, b) => a + b, 0);
  const span = makespan(actual, WORKERS);
  return {
    units: actual.length,
    estCost: stats(est),
    actualCost: stats(actual),
    makespan: Math.round(span),
    idealMakespan: Math.round(total / WORKERS),
    makespanOverIdeal: round(span / (total / WORKERS)),
  };
}

/** Documents of log-normal length, filling about `bytes`. */
function documents(rand: () => number, prefix: string, bytes: number): string {
  const vocabulary = [
    'sluice',
    'gate',
    'river',
    'partition',
    'embedding',
    'a',
    'the',
    'of',
    'throughput',
    'skewed',
    'queue',
    'worker',
    'token',
    'latency',
    'bucket',
  ];
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i += 1) {
    const gaussian = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const words = Math.max(2, Math.round(Math.exp(3.5 + 1.1 * gaussian)));
    const text = Array.from({ length: words }, () => vocabulary[Math.floor(rand() * vocabulary.length)]).join(
      ' ',
    );
    const line = JSON.stringify(i % 4 === 0 ? { text } : { id: `${prefix}-${i}`, text });
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The drop: Zipf-distributed file sizes (rank r gets 1/r of the mass), one file 1,000x
 * the median, a big gzip file, and 5,000 tiny files, written under a temp folder.
 */
async function writeDrop(root: string, scale: number) {
  const rand = seededRandom(2026);
  const files: { key: string; body: Buffer; uncompressed: number }[] = [];
  const zipfFiles = 400;
  const median = Math.round(8_000 * scale);
  // Ranks 2..N: size ~ 1/r, scaled so that the median file is `median` bytes.
  for (let r = 2; r <= zipfFiles; r += 1) {
    const bytes = Math.max(200, Math.round((median * (zipfFiles / 2)) / r));
    const body = Buffer.from(documents(rand, `z${r}`, bytes));
    files.push({
      key: `incoming/docs/zipf/file-${String(r).padStart(4, '0')}.jsonl`,
      body,
      uncompressed: body.length,
    });
  }
  // 1,000x the median of the drop's other (non-tiny) files, whatever their sizes came out as.
  const others = files.map((f) => f.body.length).sort((a, b) => a - b);
  const big = Buffer.from(documents(rand, 'big', 1000 * others[Math.ceil(others.length / 2)]!));
  files.push({ key: 'incoming/docs/zipf/file-0001-huge.jsonl', body: big, uncompressed: big.length });
  const gzText = Buffer.from(documents(rand, 'gz', median * 400));
  files.push({
    key: 'incoming/docs/export/dump.jsonl.gz',
    body: gzipSync(gzText),
    uncompressed: gzText.length,
  });
  for (let i = 0; i < 5000; i += 1) {
    const body = Buffer.from(documents(rand, `t${i}`, 60 + Math.floor(rand() * 200)));
    files.push({
      key: `incoming/docs/tiny/t-${String(i).padStart(5, '0')}.jsonl`,
      body,
      uncompressed: body.length,
    });
  }
  for (const file of files) {
    const target = path.join(root, 'bucket', ...file.key.split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, file.body);
  }
  return files;
}

/**
 * Skew: Sluice's cost-based plan vs the naive plan (one unit per file) on the same drop.
 * Actual cost is what a worker counts (chunk tokens of the records it reads), measured by
 * running each unit's readers and chunker; no endpoint is needed.
 */
export async function runSkewBench(scale = 1): Promise<SkewResult> {
  const root = await mkdtemp(path.join(tmpdir(), 'sluice-skew-'));
  try {
    const files = await writeDrop(root, scale);
    const store = new FsObjectStore(path.join(root, 'bucket'));
    const runs = new LocalRunStore(path.join(root, 'state'));
    const counter = new EstimatingTokenCounter();
    const config = parsePipelineConfig({
      name: 'docs',
      kind: 'embed',
      endpoint: { name: 'bench-embed' },
      planning: { targetUnitTokens: Math.round(40_000 * scale) },
      workers: { maxConcurrency: WORKERS },
    });

    const unitCost = async (unit: WorkUnit): Promise<number> => {
      let tokens = 0;
      for (const slice of slicesOf(unit))
        for await (const record of readSourceRecords(store, slice, config.input))
          if (record.kind === 'doc') tokens += documentCost(record.text, counter, config);
      return tokens;
    };

    const queue = new RecordingQueue();
    const planStarted = Date.now();
    const plan = await planRun({ store, runs, queue, tokenCounter: counter }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: files.map((f) => f.key),
      now: new Date('2026-03-01T00:00:00Z'),
    });
    const planMs = Date.now() - planStarted;
    const sluiceActual: number[] = [];
    for (const unit of queue.units) sluiceActual.push(await unitCost(unit));
    const sluiceEst = queue.units.map((u) => u.estCost);
    const errors = queue.units.map((u, i) => sluiceActual[i]! / Math.max(1, u.estCost)).sort((a, b) => a - b);

    const naiveUnits: WorkUnit[] = files.map((file, i) => {
      const { format, compression } = classifySource(file.key, 'auto');
      return {
        runId: RUN_ID,
        unitId: `n${i}`,
        pipeline: 'docs',
        sourceKey: file.key,
        byteStart: 0,
        byteEnd: file.body.length,
        firstLine: 1,
        format,
        compression,
        packed: [],
        estCost: estimateCost(file.body.length, compression, config),
      };
    });
    const naiveActual: number[] = [];
    for (const unit of naiveUnits) naiveActual.push(await unitCost(unit));

    const sizes = files.filter((f) => !f.key.includes('/tiny/')).map((f) => f.body.length);
    const sorted = [...sizes].sort((a, b) => a - b);
    const sluice = figures(sluiceEst, sluiceActual);
    const naive = figures(
      naiveUnits.map((u) => u.estCost),
      naiveActual,
    );
    const gz = files.find((f) => f.key.endsWith('.gz'))!;
    return {
      name: 'skew',
      drop: {
        files: files.length,
        bytes: files.reduce((sum, f) => sum + f.body.length, 0),
        medianFileBytes: sorted[Math.floor(sorted.length / 2)]!,
        largestFileBytes: sorted.at(-1)!,
        largestOverMedian: round(sorted.at(-1)! / sorted[Math.floor(sorted.length / 2)]!, 1),
        gzipBytes: gz.body.length,
        gzipUncompressedBytes: gz.uncompressed,
        tinyFiles: files.filter((f) => f.key.includes('/tiny/')).length,
        totalTokens: naiveActual.reduce((a, b) => a + b, 0),
      },
      workers: WORKERS,
      config: {
        targetUnitTokens: config.planning.targetUnitTokens,
        maxConcurrency: config.workers.maxConcurrency,
      },
      sluice: {
        ...sluice,
        planning: {
          ms: planMs,
          sampledBytes: plan.stats.sampledBytes,
          cutPassBytes: plan.stats.cutPassBytes,
          restagedBytesIn: plan.stats.restagedBytesIn,
          restagedBytesOut: plan.stats.restagedBytesOut,
          timings: plan.stats.timings,
        },
        estimateError: {
          p50: round(errors[Math.floor(errors.length / 2)]!),
          min: round(errors[0]!),
          max: round(errors.at(-1)!),
        },
      },
      naive: { description: 'one unit per file, cost = bytes / charsPerToken', ...naive },
      targets: {
        maxOverMeanActual: 1.25,
        makespanOverIdeal: 1.15,
        met: sluice.actualCost.maxOverMean <= 1.25 && sluice.makespanOverIdeal <= 1.15,
      },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
