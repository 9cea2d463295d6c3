import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { Compression, InputFormat, PackedFile, WorkUnit } from '../domain/types.ts';
import type { ObjectInfo, ObjectStore } from '../ports/object-store.ts';

/** Assumed expansion of gzip text when estimating cost before reading it. */
const GZIP_RATIO = 4;

export interface SourceFile extends ObjectInfo {
  readonly format: InputFormat;
  readonly compression: Compression;
  readonly estCost: number;
}

/** Picks format and compression from the key, unless the pipeline fixes the format. */
export function classifySource(
  key: string,
  configured: PipelineConfig['input']['format'],
): { format: InputFormat; compression: Compression } {
  const lower = key.toLowerCase();
  const compression: Compression = lower.endsWith('.gz') ? 'gzip' : 'none';
  if (configured !== 'auto') return { format: configured, compression };
  const bare = compression === 'gzip' ? lower.slice(0, -3) : lower;
  if (/\.(jsonl|ndjson|json)$/.test(bare)) return { format: 'jsonl', compression };
  if (bare.endsWith('.csv')) return { format: 'csv', compression };
  return { format: 'text', compression };
}

export function estimateCost(size: number, compression: Compression, config: PipelineConfig): number {
  const bytes = compression === 'gzip' ? size * GZIP_RATIO : size;
  return Math.ceil(bytes / config.planning.charsPerToken);
}

/** Only uncompressed JSONL is cut by byte range here; other inputs are read whole. */
function isSplittable(file: SourceFile): boolean {
  return file.format === 'jsonl' && file.compression === 'none';
}

/**
 * Finds, for each wanted cut offset, the first line start at or after it and that
 * line's 1-based number, in one streaming pass. Cuts land exactly on record starts,
 * and units can name records by line without reading what precedes them.
 */
export async function alignCutsToLines(
  store: ObjectStore,
  key: string,
  wanted: readonly number[],
): Promise<{ offset: number; line: number }[]> {
  const found: { offset: number; line: number }[] = [];
  let next = 0;
  let position = 0;
  let line = 1; // number of the line starting at `lineStart`
  let lineStart = 0;
  for await (const chunk of store.readRange(key, 0)) {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    while (next < wanted.length) {
      const nl = buf.indexOf(0x0a, from);
      if (lineStart >= wanted[next]!) {
        found.push({ offset: lineStart, line });
        next += 1;
        continue;
      }
      if (nl === -1) break;
      lineStart = position + nl + 1;
      line += 1;
      from = nl + 1;
    }
    position += buf.length;
    if (next >= wanted.length) break;
  }
  return found;
}

interface PlannedUnit {
  sourceKey: string;
  byteStart: number;
  byteEnd: number;
  firstLine: number;
  format: InputFormat;
  compression: Compression;
  packed: PackedFile[];
  estCost: number;
}

/**
 * Cuts sources into units of about `targetUnitTokens` estimated work: big splittable
 * files are cut at record starts, small files are packed together so a drop of many
 * tiny files does not become as many workers.
 */
export async function planUnits(
  store: ObjectStore,
  config: PipelineConfig,
  runId: string,
  files: readonly SourceFile[],
): Promise<WorkUnit[]> {
  const target = config.planning.targetUnitTokens;
  const planned: PlannedUnit[] = [];
  const small: SourceFile[] = [];

  for (const file of files) {
    if (file.estCost >= target / 2) {
      if (isSplittable(file) && file.estCost > target) {
        const parts = Math.ceil(file.estCost / target);
        const step = file.size / parts;
        const wanted = Array.from({ length: parts - 1 }, (_, i) => Math.round(step * (i + 1)));
        const cuts = await alignCutsToLines(store, file.key, wanted);
        const starts = [{ offset: 0, line: 1 }, ...cuts.filter((c) => c.offset < file.size)];
        const unique = starts.filter((s, i) => i === 0 || s.offset > starts[i - 1]!.offset);
        unique.forEach((start, i) => {
          const byteEnd = unique[i + 1]?.offset ?? file.size;
          planned.push({
            sourceKey: file.key,
            byteStart: start.offset,
            byteEnd,
            firstLine: start.line,
            format: file.format,
            compression: file.compression,
            packed: [],
            estCost: Math.ceil((file.estCost * (byteEnd - start.offset)) / file.size),
          });
        });
      } else {
        planned.push({
          sourceKey: file.key,
          byteStart: 0,
          byteEnd: file.size,
          firstLine: 1,
          format: file.format,
          compression: file.compression,
          packed: [],
          estCost: file.estCost,
        });
      }
    } else {
      small.push(file);
    }
  }

  // First-fit packing of small files, largest first, into units up to the target.
  small.sort((a, b) => b.estCost - a.estCost || a.key.localeCompare(b.key));
  let open: PlannedUnit | undefined;
  for (const file of small) {
    if (open && open.estCost + file.estCost <= target) {
      open.packed.push({
        key: file.key,
        size: file.size,
        format: file.format,
        compression: file.compression,
      });
      open.estCost += file.estCost;
      continue;
    }
    open = {
      sourceKey: file.key,
      byteStart: 0,
      byteEnd: file.size,
      firstLine: 1,
      format: file.format,
      compression: file.compression,
      packed: [],
      estCost: file.estCost,
    };
    planned.push(open);
  }

  return planned.map((unit, i) => ({
    ...unit,
    runId,
    unitId: `u${String(i).padStart(5, '0')}`,
    pipeline: config.name,
  }));
}
