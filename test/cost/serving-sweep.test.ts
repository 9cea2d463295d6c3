import { describe, expect, it } from 'vitest';
import { servingItemBytes, servingSweepUnits, servingWriteUnits } from '../../shared/cost/serving-writes.ts';

describe('servingSweepUnits', () => {
  it('prices a Query of each user’s partition by the bytes it reads, and one superseded list deleted per user', () => {
    // Top 20, 16-character ids: 1,069-byte items, three in a partition (3,207 bytes): one
    // 4 KB read, eventually consistent (half a unit); the delete bills the item as its put.
    const shape = { pipeline: 'recs', topN: 20 };
    expect(servingSweepUnits(1000, shape)).toEqual({ reads: 500, deletes: servingWriteUnits(1000, shape) });
    // Top 100: about 5 KB an item, three of them span four 4 KB units.
    const long = { pipeline: 'recs', topN: 100 };
    expect(Math.ceil((3 * servingItemBytes(long)) / 4096)).toBe(4);
    expect(servingSweepUnits(10, long)).toEqual({ reads: 20, deletes: servingWriteUnits(10, long) });
    expect(servingSweepUnits(0, shape)).toEqual({ reads: 0, deletes: 0 });
  });
});
