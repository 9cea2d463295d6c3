import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { logNormalDocuments } from './log-normal-documents.ts';

const repoRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 * 1024;

export interface MemoryRun {
  readonly inputBytes: number;
  readonly peakRssMiB: number;
  /**
   * Peak anonymous memory (`RssAnon`: heaps, buffers, allocations; what the process cannot
   * give back) and peak file-backed resident pages (`RssFile`: the node binary and libraries,
   * and files mapped into memory, such as LevelDB's tables; the kernel drops them under
   * pressure), polled from `/proc/<pid>/status` every 200 ms in the largest process of the
   * run. Each is its own peak, so they need not add up to `peakRssMiB`; null where `/proc`
   * is not there. The targets are on `peakRssMiB`.
   */
  readonly peakRssAnonMiB: number | null;
  readonly peakRssFileMiB: number | null;
  readonly wallSeconds: number;
  readonly exitCode: number | null;
  readonly units: number | null;
  readonly records: number | null;
  readonly chunks: number | null;
  readonly endpointCalls: number;
}

export interface MemoryVariant {
  readonly label: string;
  /** Keys of pipelines/docs.json changed for this variant. */
  readonly override: Record<string, unknown>;
  readonly runs: readonly MemoryRun[];
  /** Peak RSS of the largest input over that of the smallest. */
  readonly growth: number;
  readonly met: boolean;
}

/** One-line records (`{"id":"g<i>","text":"rg text <i>"}`, about 44 bytes), one chunk each. */
export interface ShortRecordRun extends MemoryRun {
  readonly label: string;
  readonly dimension: number;
  readonly incremental: boolean;
}

export interface MemoryResult {
  readonly name: 'memory';
  /** The command that gave these figures. */
  readonly rerun: string;
  readonly command: string;
  readonly measuredWith: string;
  readonly endpoint: string;
  readonly variants: readonly MemoryVariant[];
  /**
   * Short records with 384-float vectors: a unit holds hundreds of thousands of chunks, so
   * anything kept per chunk or per document until the unit ends shows here.
   */
  readonly shortRecords: {
    readonly runs: readonly ShortRecordRun[];
    /** The cases ran at the same time (wall times include one another). */
    readonly concurrent: boolean;
    /** Peak RSS of the largest count over that of the smallest, chunk index on. */
    readonly growth: number;
    /** Met when both runs of 1,000,000 records (chunk index on and off) peak at 300 MiB or less. */
    readonly target: { readonly peakRssMiBAt1M: number; readonly met: boolean };
  };
  /**
   * When the `docs` variants were measured: this run's time, or, when this run skipped
   * them (`MEMORY_BENCH_VARIANTS=0`), the time of the run whose figures are carried over.
   */
  readonly variantsMeasuredAt?: string;
  readonly targets: { readonly peakRssMiBAtLargest: number; readonly growth: number; readonly met: boolean };
}

/**
 * An echo endpoint: answers `POST /endpoints/<name>/invocations` (the SageMaker runtime
 * API) with one vector per input, so the run measures Sluice, not a model. The body for each
 * batch size is made once and kept: a short-records run makes tens of thousands of calls
 * with 384 floats per input, and writing each answer anew cost the bench's own process as
 * much CPU as the run it measured. The 384 values have 7 decimals (`0.0026042`), about as
 * long as the float32 numbers a TEI server writes.
 */
async function startEchoEndpoint(
  dimension = 4,
): Promise<{ server: Server; url: string; calls: () => number }> {
  let calls = 0;
  const vector =
    dimension === 4
      ? [0.1, 0.2, 0.3, 0.4]
      : Array.from({ length: dimension }, (_, i) => Number((i / dimension).toFixed(7)));
  const bodies = new Map<number, Buffer>();
  const bodyFor = (count: number): Buffer => {
    let body = bodies.get(count);
    if (!body) {
      body = Buffer.from(JSON.stringify(Array.from({ length: count }, () => vector)));
      bodies.set(count, body);
    }
    return body;
  };
  const server = createServer((request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', () => {
      calls += 1;
      if (request.method !== 'POST' || !/^\/endpoints\/[^/]+\/invocations$/.test(request.url ?? '')) {
        response.writeHead(404).end();
        return;
      }
      const { inputs } = JSON.parse(Buffer.concat(parts).toString('utf8')) as { inputs: string[] | string };
      const count = Array.isArray(inputs) ? inputs.length : 1;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(bodyFor(count));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, calls: () => calls };
}

/** Writes about `bytes` of JSONL documents with log-normal lengths, streaming. */
async function writeJsonl(file: string, bytes: number, seed: number): Promise<number> {
  const texts = logNormalDocuments({
    documents: Number.POSITIVE_INFINITY,
    seed,
    mu: 4,
    sigma: 1,
    words: ['sluice', 'gate', 'river', 'partition', 'embedding', 'a', 'the', 'of', 'worker', 'token'],
  });
  const out = createWriteStream(file);
  let written = 0;
  let batch: string[] = [];
  for (let i = 0; written < bytes; i += 1) {
    const text = texts.next().value as string;
    const line = `${JSON.stringify({ id: `m${i}`, title: `doc ${i}`, text })}\n`;
    batch.push(line);
    written += line.length;
    if (batch.length >= 2000) {
      if (!out.write(batch.join('')))
        await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      batch = [];
    }
  }
  out.write(batch.join(''));
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return (await stat(file)).size;
}

/** Writes `records` one-line JSONL records, the shape of the issue's reproduction. */
async function writeShortRecords(file: string, records: number): Promise<number> {
  const out = createWriteStream(file);
  for (let i = 0; i < records; i += 10_000) {
    const lines: string[] = [];
    for (let k = i; k < Math.min(records, i + 10_000); k += 1)
      lines.push(`${JSON.stringify({ id: `g${k}`, text: `rg text ${k}` })}\n`);
    if (!out.write(lines.join(''))) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return (await stat(file)).size;
}

/** Runs `sluice run` on one input and reads its summary. */
async function measureRun(
  file: string,
  bytes: number,
  pipelines: string,
  home: string,
  endpoint: { url: string; calls: () => number },
): Promise<MemoryRun> {
  const callsBefore = endpoint.calls();
  const started = Date.now();
  const result = await runMeasured([
    'bin/sluice.js',
    'run',
    file,
    '--pipeline',
    'docs',
    '--pipelines',
    pipelines,
    '--home',
    home,
    '--endpoint-url',
    endpoint.url,
    '--json',
  ]);
  const wallSeconds = (Date.now() - started) / 1000;
  let summary: { counts?: { units?: number; records?: number; chunks?: number } } = {};
  try {
    summary = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}');
  } catch {
    // Reported through exitCode below.
  }
  if (result.code !== 0) console.error(result.stderr.slice(-2000));
  return {
    inputBytes: bytes,
    peakRssMiB: toMiB(result.peakKiB),
    peakRssAnonMiB: result.peakAnonKiB === null ? null : toMiB(result.peakAnonKiB),
    peakRssFileMiB: result.peakFileKiB === null ? null : toMiB(result.peakFileKiB),
    wallSeconds: Math.round(wallSeconds * 10) / 10,
    exitCode: result.code,
    units: summary.counts?.units ?? null,
    records: summary.counts?.records ?? null,
    chunks: summary.counts?.chunks ?? null,
    endpointCalls: endpoint.calls() - callsBefore,
  };
}

/**
 * Short records at 384 dimensions: each count with the chunk index (the default), the
 * largest also without it (the baseline), each into a fresh home with an echo endpoint of
 * its own. The cases run at the same time: peak RSS is per process, and one after another
 * they took longer than a bench may on a shared 2-core machine (wall times then include
 * the other cases).
 */
async function runShortRecordCases(
  root: string,
  docs: Record<string, unknown>,
  counts: readonly number[],
): Promise<MemoryResult['shortRecords']> {
  const cases = [
    ...counts.map((records) => ({ records, incremental: true })),
    { records: counts.at(-1)!, incremental: false },
  ];
  for (const records of new Set(counts)) {
    const file = path.join(root, `short-${records}.jsonl`);
    if (!existsSync(file)) await writeShortRecords(file, records);
  }
  const runs = await Promise.all(
    cases.map(async ({ records, incremental }, c): Promise<ShortRecordRun> => {
      const endpoint = await startEchoEndpoint(384);
      try {
        const file = path.join(root, `short-${records}.jsonl`);
        const pipelines = path.join(root, `pipelines-short-${c}`);
        await mkdir(pipelines);
        await writeFile(
          path.join(pipelines, 'docs.json'),
          JSON.stringify({ ...docs, incremental: { enabled: incremental } }),
        );
        const home = path.join(root, `home-short-${c}`);
        const run = await measureRun(file, (await stat(file)).size, pipelines, home, endpoint);
        await rm(home, { recursive: true, force: true });
        return {
          label: `${records.toLocaleString('en')} one-line records, 384 floats, ${incremental ? 'chunk index on' : 'chunk index off'}`,
          dimension: 384,
          incremental,
          ...run,
        };
      } finally {
        await new Promise((resolve) => endpoint.server.close(resolve));
      }
    }),
  );
  const on = runs.filter((r) => r.incremental);
  const largest = counts.at(-1)!;
  const atLargest = runs.filter((r) => r.records === largest);
  return {
    runs,
    concurrent: true,
    growth: Math.round((on.at(-1)!.peakRssMiB / on[0]!.peakRssMiB) * 1000) / 1000,
    target: {
      peakRssMiBAt1M: 300,
      met:
        largest === 1_000_000 &&
        atLargest.length === 2 &&
        atLargest.every((r) => r.exitCode === 0 && r.peakRssMiB <= 300),
    },
  };
}

const toMiB = (kib: number) => Math.round((kib / 1024) * 10) / 10;

/** A process and its descendants (`sluice run` re-spawns itself with heap flags; GNU time wraps it). */
async function processTree(pid: number): Promise<number[]> {
  const tree = [pid];
  for (let i = 0; i < tree.length; i += 1) {
    try {
      for (const task of await readdir(`/proc/${tree[i]}/task`)) {
        const children = await readFile(`/proc/${tree[i]}/task/${task}/children`, 'utf8');
        for (const child of children.trim().split(/\s+/)) if (child) tree.push(Number(child));
      }
    } catch {
      // Exited meanwhile, or no /proc.
    }
  }
  return tree;
}

/**
 * Peak RSS of a child: GNU time's report when installed, else the largest VmHWM of its
 * processes polled from /proc; and the peaks of `RssAnon` and `RssFile` polled from /proc.
 */
export async function runMeasured(args: string[]): Promise<{
  peakKiB: number;
  peakAnonKiB: number | null;
  peakFileKiB: number | null;
  code: number | null;
  stdout: string;
  stderr: string;
}> {
  const useTime = existsSync('/usr/bin/time');
  const child = useTime
    ? spawn('/usr/bin/time', ['-v', process.execPath, ...args], { cwd: repoRoot })
    : spawn(process.execPath, args, { cwd: repoRoot });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const peaks = { VmHWM: 0, RssAnon: 0, RssFile: 0 };
  let polledAny = false;
  let polling = false;
  const poll = setInterval(async () => {
    if (polling || child.pid === undefined) return;
    polling = true;
    try {
      for (const pid of await processTree(child.pid)) {
        try {
          const status = await readFile(`/proc/${pid}/status`, 'utf8');
          for (const key of Object.keys(peaks) as (keyof typeof peaks)[]) {
            const value = new RegExp(`${key}:\\s+(\\d+) kB`).exec(status);
            if (value) {
              peaks[key] = Math.max(peaks[key], Number(value[1]));
              polledAny = true;
            }
          }
        } catch {
          // The process has exited.
        }
      }
    } finally {
      polling = false;
    }
  }, 200);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(poll);
  const reported = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  return {
    peakKiB: reported ? Number(reported[1]) : peaks.VmHWM,
    peakAnonKiB: polledAny ? peaks.RssAnon : null,
    peakFileKiB: polledAny ? peaks.RssFile : null,
    code,
    stdout,
    stderr,
  };
}

const ALL_VARIANTS = [
  { label: 'docs as configured', override: {} },
  { label: 'docs without the chunk index', override: { incremental: { enabled: false } } },
];

/** A list of numbers from the environment (`MEMORY_BENCH_SIZES_MIB=1024`), else the default. */
function numbersFromEnv(name: string, fallback: readonly number[]): readonly number[] {
  const value = process.env[name];
  return value ? value.split(',').map(Number) : fallback;
}

/**
 * Memory: peak RSS of `sluice run` (default threads) on generated JSONL of each size,
 * against an echo endpoint, with the `docs` pipeline as configured (its chunk index grows
 * with the corpus but lives on disk) and with the chunk index turned off (the ingest path
 * alone: a unit's memory follows its cost target and sort window, not the file); and, at
 * the same time (peak RSS is per process; wall times then include the other runs), short
 * records at 384 dimensions (`MEMORY_BENCH_SHORT_RECORDS`, default 250,000, 500,000 and
 * 1,000,000, the largest also without the chunk index). On a small machine
 * `MEMORY_BENCH_SIZES_MIB=1024` and `MEMORY_BENCH_VARIANTS=1` run only the 1 GB input of the
 * configured pipeline; `MEMORY_BENCH_VARIANTS=0` runs only the short records and carries the
 * variants of the committed result over, with their own `variantsMeasuredAt`.
 */
export async function runMemoryBench(
  sizesMiB: readonly number[] = numbersFromEnv('MEMORY_BENCH_SIZES_MIB', [100, 1024]),
  shortRecordCounts: readonly number[] = numbersFromEnv(
    'MEMORY_BENCH_SHORT_RECORDS',
    [250_000, 500_000, 1_000_000],
  ),
  variants: readonly { label: string; override: Record<string, unknown> }[] = ALL_VARIANTS.slice(
    0,
    Number(process.env.MEMORY_BENCH_VARIANTS ?? ALL_VARIANTS.length),
  ),
): Promise<MemoryResult> {
  const root = await mkdtemp(path.join(tmpdir(), 'sluice-memory-'));
  const endpoint = await startEchoEndpoint();
  const results: MemoryVariant[] = [];
  let shortRecords: MemoryResult['shortRecords'] | undefined;
  let carried: Pick<MemoryResult, 'variants' | 'targets' | 'variantsMeasuredAt'> | undefined;
  try {
    const docs = JSON.parse(await readFile(path.join(repoRoot, 'pipelines', 'docs.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const short = runShortRecordCases(root, docs, shortRecordCounts);
    // Handled where it is awaited; this only keeps a failure from going unhandled meanwhile.
    short.catch(() => {});
    const inputs: { file: string; bytes: number }[] = [];
    for (const [i, size] of (variants.length > 0 ? sizesMiB : []).entries()) {
      const file = path.join(root, `docs-${size}mib.jsonl`);
      inputs.push({ file, bytes: await writeJsonl(file, size * MiB, 100 + i) });
    }
    for (const [v, variant] of variants.entries()) {
      const pipelines = path.join(root, `pipelines-${v}`);
      await mkdir(pipelines);
      // The echo endpoint answers 4 floats: the pipeline must say so, or every unit fails at its first batch.
      const endpointConfig = { ...(docs.endpoint as Record<string, unknown>), dimension: 4 };
      await writeFile(
        path.join(pipelines, 'docs.json'),
        JSON.stringify({ ...docs, endpoint: endpointConfig, ...variant.override }),
      );
      const runs: MemoryRun[] = [];
      for (const input of inputs) {
        const home = path.join(root, `home-${v}`);
        runs.push(await measureRun(input.file, input.bytes, pipelines, home, endpoint));
        await rm(home, { recursive: true, force: true });
      }
      const growth = Math.round((runs.at(-1)!.peakRssMiB / runs[0]!.peakRssMiB) * 1000) / 1000;
      const met = runs.every((r) => r.exitCode === 0) && runs.at(-1)!.peakRssMiB <= 300 && growth <= 1.2;
      results.push({ label: variant.label, override: variant.override, runs, growth, met });
    }
    shortRecords = await short;
    if (variants.length === 0) carried = await previousVariants();
  } finally {
    await new Promise((resolve) => endpoint.server.close(resolve));
    await rm(root, { recursive: true, force: true });
  }
  return {
    name: 'memory',
    rerun: `MEMORY_BENCH_SIZES_MIB=${sizesMiB.join(',')} MEMORY_BENCH_VARIANTS=${variants.length} MEMORY_BENCH_SHORT_RECORDS=${shortRecordCounts.join(',')} npm run bench -- memory`,
    command:
      'node bin/sluice.js run <file> --pipeline docs --pipelines <docs.json with the override> --home <tmp> --endpoint-url <echo> --json',
    measuredWith: existsSync('/usr/bin/time')
      ? '/usr/bin/time -v (maximum resident set size)'
      : '/proc/<pid>/status VmHWM',
    endpoint:
      'in-process echo server: one [0.1, 0.2, 0.3, 0.4] per input (variants); 384 floats of 7 decimals per input, each batch size answered from a body made once (shortRecords)',
    shortRecords: shortRecords!,
    ...(carried ?? {
      variants: results,
      targets: { peakRssMiBAtLargest: 300, growth: 1.2, met: results[0]?.met ?? false },
      variantsMeasuredAt: new Date().toISOString(),
    }),
  };
}

/**
 * The `docs` variants of the committed result, with when they were measured, for a run
 * that measures only the short records (`MEMORY_BENCH_VARIANTS=0`): carried over as they
 * were, not measured again.
 */
async function previousVariants(): Promise<
  Pick<MemoryResult, 'variants' | 'targets' | 'variantsMeasuredAt'>
> {
  const previous = JSON.parse(
    await readFile(path.join(repoRoot, 'bench', 'results', 'memory.json'), 'utf8'),
  ) as MemoryResult & { measuredAt?: string };
  return {
    variants: previous.variants,
    targets: previous.targets,
    variantsMeasuredAt: previous.variantsMeasuredAt ?? previous.measuredAt ?? 'unknown',
  };
}
