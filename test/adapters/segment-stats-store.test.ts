import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DynamoSegmentStatsStore } from '../../shared/adapters/aws/dynamo-segment-stats-store.ts';
import { LocalSegmentStatsStore } from '../../shared/adapters/local/local-segment-stats-store.ts';
import type { SegmentStatsStore } from '../../shared/ports/segment-stats-store.ts';
import type { SegmentStats } from '../../shared/scoring/aggregates/segment-aggregates.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';

const prior = { alpha: 2, beta: 18, method: 'moments' as const, segments: 30 };
const segments: SegmentStats[] = Array.from({ length: 30 }, (_, i) => ({
  segment: { region: `r${String(i).padStart(2, '0')}`, product: i % 2 ? 'card' : null },
  key: JSON.stringify([`r${String(i).padStart(2, '0')}`, i % 2 ? 'card' : null]),
  count: 10 + i,
  scoreMean: i / 30,
  scoreQuantiles: { p50: i / 31 },
  trials: 10 + i,
  positives: i % 3,
  rateMle: (i % 3) / (10 + i),
  rateMap: 0.1,
}));

function contract(name: string, make: () => Promise<{ store: SegmentStatsStore; cleanup(): Promise<void> }>) {
  describe(`SegmentStatsStore: ${name}`, () => {
    it('keeps every segment of a run, replaced whole by a retried finalize', async () => {
      const { store, cleanup } = await make();
      await store.recordSegments('credit-risk', 'r-20261128T000000Z-aaaaaa', prior, segments);
      await store.recordSegments('credit-risk', 'r-20261128T000000Z-aaaaaa', prior, segments);
      const back = await store.listSegments('r-20261128T000000Z-aaaaaa');
      expect(back).toHaveLength(30);
      expect(back.find((s) => s.segment.region === 'r07')).toEqual(segments[7]);
      expect(await store.listSegments('r-20261128T000000Z-bbbbbb')).toEqual([]);
      await cleanup();
    });
  });
}

contract('LocalSegmentStatsStore', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-seg-'));
  return { store: new LocalSegmentStatsStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-segments' });

contract('DynamoSegmentStatsStore on dynalite', async () => ({
  store: new DynamoSegmentStatsStore({ doc: dynalite.doc, tableName: await dynalite.newTable() }),
  cleanup: async () => {},
}));
