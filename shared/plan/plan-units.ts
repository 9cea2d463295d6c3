import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { Compression, InputFormat, PackedFile, WorkUnit } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { findRecordStarts, type RecordStartsResult } from './record-starts.ts';
import type { StagedPiece } from './restage-gzip.ts';
import type { ClassifiedFile, CostEstimate } from './sample-cost.ts';
import {
  assertUnitsFit,
  MAX_CSV_HEADER_BYTES,
  MAX_PACKED_FILES,
  MAX_UNIT_DESCRIPTOR_BYTES,
  packedEntryBytes,
} from './unit-limits.ts';

/** Assumed expansion of gzip text when estimating cost before reading it. */
const GZIP_RATIO = 4;

export interface SourceFile extends ClassifiedFile {
  readonly estCost: number;
  /** The sample behind `estCost`, when one was taken (Parquet row groups, CSV quotes). */
  readonly estimate?: CostEstimate;
}

/** Picks format and compression from the key, unless the pipeline fixes the format. */
export function classifySource(
  key: string,
  configured: PipelineConfig['input']['format'] | 'parquet',
): { format: InputFormat; compression: Compression } {
  const lower = key.toLowerCase();
  const compression: Compression = lower.endsWith('.gz') ? 'gzip' : 'none';
  if (configured !== 'auto') return { format: configured, compression };
  const bare = compression === 'gzip' ? lower.slice(0, -3) : lower;
  if (/\.(jsonl|ndjson|json)$/.test(bare)) return { format: 'jsonl', compression };
  if (bare.endsWith('.csv')) return { format: 'csv', compression };
  if (bare.endsWith('.parquet')) return { format: 'parquet', compression };
  return { format: 'text', compression };
}

/** Cost from size alone (bytes / `planning.charsPerToken`), for when nothing can be sampled. */
export function estimateCost(size: number, compression: Compression, config: PipelineConfig): number {
  const bytes = compression === 'gzip' ? size * GZIP_RATIO : size;
  return Math.ceil(bytes / config.planning.charsPerToken);
}

/**
 * How many units a run of `totalCost` should have: enough for about
 * `planning.targetUnitTokens` each, rounded up to a whole number of waves of
 * `workers.maxConcurrency` workers (a last wave with few units would leave most of the
 * fleet idle behind them), unless that would make units smaller than a quarter of the
 * target. `waves` says whether the count was rounded, so a planner that needs more
 * units adds whole waves.
 */
export function unitCount(totalCost: number, config: PipelineConfig): { units: number; waves: boolean } {
  const target = config.planning.targetUnitTokens;
  if (totalCost <= 0) return { units: 1, waves: false };
  const units = Math.max(1, Math.ceil(totalCost / target));
  const workers = config.workers.maxConcurrency;
  const rounded = Math.ceil(units / workers) * workers;
  return totalCost / rounded >= target / 4 ? { units: rounded, waves: true } : { units, waves: false };
}

/** The cost each unit should have (see {@link unitCount}). */
export function unitCostTarget(totalCost: number, config: PipelineConfig): number {
  if (totalCost <= 0) return config.planning.targetUnitTokens;
  return totalCost / unitCount(totalCost, config).units;
}

/** A range of a split file may cost this much more than the target, so a file is not cut into one piece too many. */
const RANGE_SLACK = 1.1;

type UnitBody = Omit<WorkUnit, 'runId' | 'unitId' | 'pipeline' | 'packed' | 'estCost'>;

/** A range of one source that is a unit's main slice (a split file, row groups, a staged part). */
interface RangePiece {
  readonly body: UnitBody;
  readonly cost: number;
}

interface Bin {
  main?: RangePiece;
  files: SourceFile[];
  load: number;
  bytes: number;
}

/** Estimated descriptor bytes of a unit before its packed files. */
const UNIT_BASE_BYTES = 512;

/** The unit fields that pin a file's version, when planning knows it. */
function versionOf(file: SourceFile): { sourceVersion?: string } {
  return file.version === undefined ? {} : { sourceVersion: file.version };
}

function wholeBody(file: SourceFile): UnitBody {
  return {
    sourceKey: file.key,
    ...versionOf(file),
    byteStart: 0,
    byteEnd: file.size,
    firstLine: 1,
    format: file.format,
    compression: file.compression,
  };
}

function packedOf(file: SourceFile): PackedFile {
  return {
    key: file.key,
    size: file.size,
    format: file.format,
    compression: file.compression,
    ...(file.version === undefined ? {} : { version: file.version }),
  };
}

/** Cuts a big uncompressed JSONL or CSV file into `parts` ranges at proven record starts. */
async function splitByRecords(
  store: ObjectStore,
  file: SourceFile,
  parts: number,
  stats: PlanStats,
): Promise<RangePiece[] | undefined> {
  const format = file.format as 'jsonl' | 'csv';
  const wanted = Array.from({ length: parts - 1 }, (_, i) => Math.round((file.size * (i + 1)) / parts));
  const found: RecordStartsResult = await findRecordStarts(
    store,
    {
      key: file.key,
      size: file.size,
      format,
      ...(file.version === undefined ? {} : { version: file.version }),
    },
    wanted,
    {
      maybeQuoted: file.estimate?.maybeQuoted ?? true,
    },
  );
  stats.cutPassBytes += found.bytesRead;
  stats.cutPasses.push({ key: file.key, method: found.method, bytesRead: found.bytesRead });
  if (
    format === 'csv' &&
    (found.csvHeader === undefined || Buffer.byteLength(found.csvHeader) > MAX_CSV_HEADER_BYTES)
  )
    return undefined;
  const starts = [{ offset: 0, line: 1 }, ...found.starts];
  return starts.map((start, i) => {
    const byteEnd = starts[i + 1]?.offset ?? file.size;
    return {
      body: {
        sourceKey: file.key,
        ...versionOf(file),
        byteStart: start.offset,
        byteEnd,
        firstLine: start.line,
        format: file.format,
        compression: 'none',
        ...(format === 'csv' && start.offset > 0 ? { csvHeader: found.csvHeader! } : {}),
      },
      cost: (file.estCost * (byteEnd - start.offset)) / file.size,
    };
  });
}

/** Groups consecutive row groups of a Parquet file into `parts` ranges of about equal cost. */
function splitByRowGroups(file: SourceFile, parts: number): RangePiece[] | undefined {
  const parquet = file.estimate?.parquet;
  if (!parquet || parquet.rowGroups.length < 2) return undefined;
  const groups = parquet.rowGroups;
  const cumulative: number[] = [];
  let sum = 0;
  for (let i = 0; i < groups.length; i += 1) {
    sum += parquet.costs[i] ?? 0;
    cumulative.push(sum);
  }
  // After which row group each piece ends: the boundary nearest to its ideal share.
  const ends: number[] = [];
  for (let j = 1; j < parts; j += 1) {
    const ideal = (sum * j) / parts;
    let best = -1;
    for (let i = (ends.at(-1) ?? -1) + 1; i < groups.length - 1; i += 1) {
      if (best === -1 || Math.abs(cumulative[i]! - ideal) < Math.abs(cumulative[best]! - ideal)) best = i;
    }
    if (best !== -1) ends.push(best);
  }
  ends.push(groups.length - 1);
  let first = 0;
  return ends.map((last) => {
    const group = groups[first]!;
    const piece: RangePiece = {
      body: {
        sourceKey: file.key,
        ...versionOf(file),
        byteStart: first === 0 ? 0 : group.start,
        byteEnd: groups[last + 1]?.start ?? file.size,
        firstLine: group.firstRow + 1,
        format: 'parquet',
        compression: 'none',
      },
      cost: cumulative[last]! - (first === 0 ? 0 : cumulative[first - 1]!),
    };
    first = last + 1;
    return piece;
  });
}

/** What planning read to cut files, for the benchmark and the run manifest. */
export interface PlanStats {
  cutPassBytes: number;
  cutPasses: { key: string; method: string; bytesRead: number }[];
}

/** A binary min-heap of bins by load (ties: older bin first), for least-loaded packing. */
class BinHeap {
  private readonly items: { bin: Bin; order: number }[] = [];
  private counter = 0;

  get size(): number {
    return this.items.length;
  }

  push(bin: Bin): void {
    this.items.push({ bin, order: this.counter++ });
    let i = this.items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): Bin | undefined {
    const top = this.items[0];
    const last = this.items.pop();
    if (!top || !last) return undefined;
    if (this.items.length > 0) {
      this.items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.items.length && this.less(l, m)) m = l;
        if (r < this.items.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top.bin;
  }

  private less(a: number, b: number): boolean {
    const x = this.items[a]!;
    const y = this.items[b]!;
    return x.bin.load < y.bin.load || (x.bin.load === y.bin.load && x.order < y.order);
  }

  private swap(a: number, b: number): void {
    const t = this.items[a]!;
    this.items[a] = this.items[b]!;
    this.items[b] = t;
  }
}

/**
 * Cuts sources into units of about equal estimated cost (see {@link unitCostTarget}):
 *
 * - a big uncompressed JSONL or CSV file is cut into ranges at proven record starts
 *   (`findRecordStarts`), a big Parquet file into runs of row groups, and re-staged gzip
 *   parts come in already cut; each such range starts its own unit;
 * - every other file is whole; whole files go, largest first, into the unit with the
 *   least estimated cost so far (LPT), so small files fill the room a range leaves and
 *   a drop of many tiny files becomes a few units rather than as many workers;
 * - a unit closes to more files once its descriptor nears {@link MAX_UNIT_DESCRIPTOR_BYTES}
 *   or it reads {@link MAX_PACKED_FILES} files, so every unit stays a small SQS message.
 */
export async function planUnits(
  store: ObjectStore,
  config: PipelineConfig,
  runId: string,
  files: readonly SourceFile[],
  options: { readonly staged?: readonly StagedPiece[]; readonly stats?: PlanStats } = {},
): Promise<WorkUnit[]> {
  const stats = options.stats ?? { cutPassBytes: 0, cutPasses: [] };
  const staged = options.staged ?? [];
  const { count, target } = unitSizing(files, staged, config);
  const bins = new UnitBins();
  const whole: SourceFile[] = [];
  for (const file of files) {
    const ranges = await cutRanges(store, file, partsOf(file, target), stats);
    if (ranges) for (const range of ranges) bins.open(range, range.cost);
    else whole.push(file);
  }
  for (const part of staged) {
    const { estCost, ...body } = part;
    bins.open({ body: { ...body, compression: 'gzip' }, cost: estCost }, estCost);
  }
  bins.packWholeFiles(whole, count);
  const units = bins.units(runId, config);
  assertUnitsFit(units);
  return units;
}

/** Whether a file can be cut into ranges: uncompressed JSONL or CSV, or Parquet of several row groups. */
function isSplittable(file: SourceFile): boolean {
  return (
    file.compression === 'none' &&
    (file.format === 'jsonl' ||
      file.format === 'csv' ||
      (file.format === 'parquet' && (file.estimate?.parquet?.rowGroups.length ?? 0) > 1))
  );
}

/** Ranges a file is cut into for units of about `target`: 1 for a file kept whole. */
export function partsOf(file: SourceFile, target: number): number {
  return isSplittable(file) && file.estCost > target * RANGE_SLACK
    ? Math.ceil(file.estCost / (target * RANGE_SLACK))
    : 1;
}

/**
 * The number of units and the cost each should have. Each split file's ranges start a unit
 * of their own, as do staged parts and whole files over the target: the smallest count (in
 * whole waves, when {@link unitCount} rounded to waves) that holds them all.
 */
export function unitSizing(
  files: readonly SourceFile[],
  staged: readonly StagedPiece[],
  config: PipelineConfig,
): { count: number; target: number } {
  const total = files.reduce((sum, f) => sum + f.estCost, 0) + staged.reduce((sum, p) => sum + p.estCost, 0);
  let { units: count, waves } = unitCount(total, config);
  let target = total > 0 ? total / count : config.planning.targetUnitTokens;
  for (let guard = 0; guard < 1000 && total > 0; guard += 1) {
    let forced = staged.length;
    for (const file of files) {
      const parts = partsOf(file, target);
      forced += parts > 1 ? parts : file.estCost >= target ? 1 : 0;
    }
    if (forced <= count) break;
    count = waves ? count + config.workers.maxConcurrency : forced;
    target = total / count;
  }
  return { count, target };
}

/** A file's ranges when it is cut into `parts` (more than one); undefined when it stays whole. */
async function cutRanges(
  store: ObjectStore,
  file: SourceFile,
  parts: number,
  stats: PlanStats,
): Promise<RangePiece[] | undefined> {
  if (parts <= 1) return undefined;
  if (file.format === 'parquet') return splitByRowGroups(file, parts);
  return splitByRecords(store, file, parts, stats);
}

/** The units being filled: a range opens a unit of its own; whole files are packed into the least loaded. */
class UnitBins {
  private readonly bins: Bin[] = [];

  /** A new unit, with `main` as its range when given. */
  open(main: RangePiece | undefined, load: number): Bin {
    const bin: Bin = { files: [], load, bytes: UNIT_BASE_BYTES + (main?.body.csvHeader?.length ?? 0) };
    if (main) bin.main = main;
    this.bins.push(bin);
    return bin;
  }

  /**
   * Packs whole files, largest first, each into the unit with the least estimated cost so far
   * (LPT), after opening empty units up to `count`. A unit that cannot take another file
   * (too many files, or its descriptor too big) leaves the heap for good.
   */
  packWholeFiles(whole: readonly SourceFile[], count: number): void {
    const sorted = [...whole].sort(
      (a, b) => b.estCost - a.estCost || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
    const heap = new BinHeap();
    for (const bin of this.bins) heap.push(bin);
    const empty = Math.min(count - this.bins.length, sorted.length);
    for (let i = 0; i < empty; i += 1) heap.push(this.open(undefined, 0));
    for (const file of sorted) {
      const entry = packedEntryBytes(packedOf(file));
      let bin = heap.pop();
      while (bin && (bin.files.length >= MAX_PACKED_FILES || bin.bytes + entry > MAX_UNIT_DESCRIPTOR_BYTES))
        bin = heap.pop();
      bin ??= this.open(undefined, 0);
      bin.files.push(file);
      bin.load += file.estCost;
      bin.bytes += entry;
      heap.push(bin);
    }
  }

  /** The units, in source order, numbered `u00000`...: a unit's range, else its largest file, then the rest packed by key. */
  units(runId: string, config: PipelineConfig): WorkUnit[] {
    return this.bins
      .filter((bin) => bin.main || bin.files.length > 0)
      .map((bin) => {
        const files = [...bin.files];
        const body = bin.main?.body ?? wholeBody(files.shift()!);
        files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        return { ...body, packed: files.map(packedOf), estCost: Math.round(bin.load) };
      })
      .sort(
        (a, b) =>
          (a.sourceKey < b.sourceKey ? -1 : a.sourceKey > b.sourceKey ? 1 : 0) || a.byteStart - b.byteStart,
      )
      .map(
        (unit, i): WorkUnit => ({
          runId,
          unitId: `u${String(i).padStart(5, '0')}`,
          pipeline: config.name,
          ...unit,
        }),
      );
  }
}
