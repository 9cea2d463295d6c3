import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  classifySource,
  estimateCost,
  partsOf,
  planUnits,
  type SourceFile,
  unitSizing,
} from '../../shared/plan/plan-units.ts';
import type { StagedPiece } from '../../shared/plan/restage-gzip.ts';
import { readSourceRecords } from '../../shared/readers/source-records.ts';
import { slicesOf } from '../../shared/work/unit-records.ts';
import { pipelineConfig } from './factories.ts';

async function fileOf(
  store: MemoryObjectStore,
  key: string,
  body: string,
  config = pipelineConfig(),
): Promise<SourceFile> {
  await store.put(key, body);
  const { format, compression } = classifySource(key, 'auto');
  const size = Buffer.byteLength(body);
  return { key, size, format, compression, estCost: estimateCost(size, compression, config) };
}

describe('classifySource', () => {
  it('picks the format by extension and sees gzip', () => {
    expect(classifySource('a/b.jsonl', 'auto')).toEqual({ format: 'jsonl', compression: 'none' });
    expect(classifySource('a/b.NDJSON.gz', 'auto')).toEqual({ format: 'jsonl', compression: 'gzip' });
    expect(classifySource('a/b.csv', 'auto')).toEqual({ format: 'csv', compression: 'none' });
    expect(classifySource('a/readme', 'auto')).toEqual({ format: 'text', compression: 'none' });
    expect(classifySource('a/table.Parquet', 'auto')).toEqual({ format: 'parquet', compression: 'none' });
    expect(classifySource('a/b.txt', 'jsonl')).toEqual({ format: 'jsonl', compression: 'none' });
  });
});

describe('planUnits', () => {
  it('splits a big JSONL file at record starts so every record is read exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ minLength: 0, maxLength: 120 }), { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 20, max: 400 }),
        async (texts, target) => {
          const config = pipelineConfig({ planning: { targetUnitTokens: target, charsPerToken: 1 } });
          const store = new MemoryObjectStore(13);
          const body = texts.map((text, i) => JSON.stringify({ id: `r${i}`, text: `${text}.` })).join('\n');
          const file = await fileOf(store, 'incoming/docs/big.jsonl', body, config);
          const units = await planUnits(store, config, 'r-20260101T000000Z-000000', [file]);
          const ids: string[] = [];
          for (const unit of units) {
            expect(unit.byteStart === 0 || body[unit.byteStart - 1] === '\n').toBe(true);
            for (const slice of slicesOf(unit)) {
              for await (const record of readSourceRecords(store, slice, config.input)) {
                if (record.kind === 'doc') {
                  ids.push(record.id);
                  expect(record.line).toBe(Number(record.id.slice(1)) + 1);
                }
              }
            }
          }
          expect(ids).toEqual(texts.map((_, i) => `r${i}`));
          if (file.estCost > target * 2) expect(units.length).toBeGreaterThan(1);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('packs small files into shared units up to the target cost', async () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 1000, charsPerToken: 1 } });
    const store = new MemoryObjectStore();
    const files = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        fileOf(
          store,
          `incoming/docs/s${i}.jsonl`,
          `${JSON.stringify({ id: i, text: 'x'.repeat(60) })}\n`,
          config,
        ),
      ),
    );
    const units = await planUnits(store, config, 'r-20260101T000000Z-000000', files);
    expect(units.length).toBeLessThan(10);
    expect(units.every((u) => u.estCost <= 1000)).toBe(true);
    const keys = units.flatMap((u) => [u.sourceKey, ...u.packed.map((p) => p.key)]).sort();
    expect(keys).toEqual(files.map((f) => f.key).sort());
    expect(new Set(units.map((u) => u.unitId)).size).toBe(units.length);
  });
});

describe('planUnits steps', () => {
  const file = (key: string, estCost: number, over: Partial<SourceFile> = {}): SourceFile => ({
    key,
    size: estCost * 4,
    format: 'jsonl',
    compression: 'none',
    estCost,
    ...over,
  });
  const stagedParts = (n: number, estCost: number) =>
    Array.from({ length: n }, (_, i) => ({ sourceKey: `s${i}.jsonl.gz`, estCost }) as unknown as StagedPiece);

  it('cuts only splittable files over the target (with 10% slack) into ranges', () => {
    expect(partsOf(file('a.jsonl', 1000), 100)).toBe(10);
    expect(partsOf(file('a.jsonl', 110), 100)).toBe(1);
    expect(partsOf(file('a.jsonl', 111), 100)).toBe(2);
    expect(partsOf(file('a.jsonl.gz', 1000, { compression: 'gzip' }), 100)).toBe(1);
    expect(partsOf(file('a.txt', 1000, { format: 'text' }), 100)).toBe(1);
    // Parquet splits by row groups: a file of one row group stays whole.
    const groups = (n: number) =>
      ({ parquet: { rowGroups: Array.from({ length: n }, () => ({})), costs: [] } }) as never;
    expect(partsOf(file('a.parquet', 1000, { format: 'parquet', estimate: groups(1) }), 100)).toBe(1);
    expect(partsOf(file('a.parquet', 1000, { format: 'parquet', estimate: groups(3) }), 100)).toBe(10);
  });

  it('sizes units to the target in whole waves of workers', () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 100 }, workers: { maxConcurrency: 4 } });
    // 10 units of 100 round up to 3 waves of 4.
    expect(unitSizing([file('a.jsonl', 1000)], [], config)).toEqual({ count: 12, target: 1000 / 12 });
    expect(unitSizing([], [], config)).toEqual({ count: 1, target: 100 });
  });

  it('adds whole waves until every staged part and every range has a unit of its own', () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 100 }, workers: { maxConcurrency: 4 } });
    // 100 in all is one unit, a wave of 4; 20 staged parts need 5 waves.
    expect(unitSizing([], stagedParts(20, 5), config)).toEqual({ count: 20, target: 5 });
    // A file cut into ranges counts its ranges: 1000 in 12 units of 91.7 is 10 ranges, with 20 parts 30.
    const mixed = unitSizing([file('a.jsonl', 1000)], stagedParts(20, 5), config);
    expect(mixed.count % 4).toBe(0);
    expect(mixed.count).toBeGreaterThanOrEqual(20 + partsOf(file('a.jsonl', 1000), mixed.target));
    expect(mixed.target).toBe(1100 / mixed.count);
  });

  it('asks for exactly the forced units when the count was not rounded to waves', () => {
    const config = pipelineConfig({ planning: { targetUnitTokens: 1000 }, workers: { maxConcurrency: 8 } });
    // 10 in all: one unit (8 would be far under a quarter of the target); 3 staged parts force 3.
    expect(unitSizing([], stagedParts(3, 10 / 3), config)).toEqual({ count: 3, target: 10 / 3 });
  });
});
