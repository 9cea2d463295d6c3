import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { classifySource, estimateCost, planUnits, type SourceFile } from '../../shared/plan/plan-units.ts';
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
