import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors/errors.ts';
import { decodeInteractionIndex, encodeInteractionIndex } from '../../shared/jobs/recommend/index-codec.ts';
import { stableHash } from '../../shared/jobs/recommend/stable-hash.ts';
import { cfOver, interactions } from './recommend-support.ts';

describe('stableHash', () => {
  it('is 32-bit FNV-1a over UTF-8 (published test vectors), parts joined by a 0 byte', () => {
    expect(stableHash('')).toBe(0x811c9dc5);
    expect(stableHash('a')).toBe(0xe40c292c);
    expect(stableHash('foobar')).toBe(0xbf9cf968);
    expect(stableHash('a', 'b')).toBe(stableHash('a\u0000b'));
    expect(stableHash('é')).not.toBe(stableHash('e'));
  });
});

describe('the hot-item cap', () => {
  // Item h is held by u1..u4 (cap 2), c by u1 and u2, d by u3 and u4. Values are 1
  // (implicit, cosine): every norm stays √2 whatever the sample.
  const rows = interactions([
    ['u1', 'h'],
    ['u2', 'h'],
    ['u3', 'h'],
    ['u4', 'h'],
    ['u1', 'c'],
    ['u2', 'c'],
    ['u3', 'd'],
    ['u4', 'd'],
  ]);
  const sample = ['u1', 'u2', 'u3', 'u4']
    .map((user) => ({ user, hash: stableHash('h', user) }))
    .sort((a, b) => a.hash - b.hash || (a.user < b.user ? -1 : 1))
    .slice(0, 2)
    .map((s) => s.user)
    .sort();

  it('keeps the users with the lowest stableHash(item, user) and counts capped items', () => {
    const cf = cfOver(rows, {
      feedback: 'implicit',
      similarity: 'cosine',
      maxItemUsers: 2,
      minCommonItems: 1,
    });
    expect(cf.postings.cappedItems).toBe(1);
    const h = cf.index.itemIds.indexOf('h');
    const kept = Array.from(
      cf.postings.itemUsers.subarray(cf.postings.itemPtr[h]!, cf.postings.itemPtr[h + 1]!),
      (u) => cf.index.userIds[u],
    );
    expect(kept).toEqual(sample);
  });

  it('counts only sampled pairs in n_uv and dot products, with exact norms', () => {
    const cf = cfOver(rows, {
      feedback: 'implicit',
      similarity: 'cosine',
      maxItemUsers: 2,
      minCommonItems: 1,
      shrinkage: 0,
    });
    // u1-u2 share h and c; both in the h sample -> n 2, s = 2/(√2√2) = 1; else n 1, s = 1/2.
    const both = sample.includes('u1') && sample.includes('u2');
    const u1u2 = cf.neighboursOf('u1').find((n) => n.user === 'u2')!;
    expect(u1u2.common).toBe(both ? 2 : 1);
    expect(u1u2.similarity).toBeCloseTo(both ? 1 : 0.5, 12);
    // A user outside the sample shares no hot item with anyone through h.
    for (const outside of ['u1', 'u2', 'u3', 'u4'].filter((u) => !sample.includes(u))) {
      for (const n of cf.neighboursOf(outside)) expect(n.common).toBe(1);
    }
    expect(Array.from(cf.postings.norms)).toEqual([Math.SQRT2, Math.SQRT2, Math.SQRT2, Math.SQRT2]);
  });

  it('is exact when no item is held by more users than the cap', () => {
    const arbitraryRows = fc.array(
      fc.tuple(
        fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
        fc.constantFrom('1', '2', '3', '4', '5'),
        fc.integer({ min: 1, max: 5 }),
      ),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(arbitraryRows, fc.constantFrom('pearson', 'cosine'), (raw, similarity) => {
        const data = interactions(raw);
        const base = {
          feedback: 'explicit',
          similarity,
          minNeighbours: 1,
          minCommonItems: 1,
          shrinkage: 3,
        } as const;
        const capped = cfOver(data, { ...base, maxItemUsers: 6 }); // 6 users: no item exceeds it
        expect(capped.postings.cappedItems).toBe(0);
        for (const user of capped.index.userIds) {
          expect(capped.neighboursOf(user)).toEqual(bruteForceNeighbours(data, user, similarity, 3));
        }
      }),
      { numRuns: 150 },
    );
  });
});

/** The contract's formulas straight from maps, for the exactness property. */
function bruteForceNeighbours(
  data: ReturnType<typeof interactions>,
  user: string,
  similarity: 'pearson' | 'cosine',
  shrinkage: number,
) {
  const byUser = new Map<string, Map<string, { value: number; t: number }>>();
  for (const { userId, itemId, value } of data) {
    const row = byUser.get(userId) ?? new Map();
    const kept = row.get(itemId);
    if (kept === undefined || value > kept.value) row.set(itemId, { value, t: 0 });
    byUser.set(userId, row);
  }
  const centred = (u: string) => {
    const row = byUser.get(u)!;
    const values = [...row.values()].map((v) => v.value);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return new Map([...row].map(([item, v]) => [item, similarity === 'pearson' ? v.value - mean : v.value]));
  };
  const norm = (w: Map<string, number>) => Math.sqrt([...w.values()].reduce((a, b) => a + b * b, 0));
  const wu = centred(user);
  const result: { user: string; similarity: number; common: number }[] = [];
  for (const other of byUser.keys()) {
    if (other === user) continue;
    const wv = centred(other);
    let dot = 0;
    let n = 0;
    for (const [item, x] of wu) {
      const y = wv.get(item);
      if (y === undefined) continue;
      n++;
      dot += x * y;
    }
    if (n < 1 || norm(wu) === 0 || norm(wv) === 0) continue;
    const s = ((dot / (norm(wu) * norm(wv))) * n) / (n + shrinkage);
    if (s > 0) result.push({ user: other, similarity: s, common: n });
  }
  result.sort((a, b) => b.similarity - a.similarity || (a.user < b.user ? -1 : 1));
  return result.slice(0, 40).map((r) => ({ ...r, similarity: expect.closeTo(r.similarity, 12) }));
}

describe('the index codec', () => {
  const cf = cfOver(
    interactions([
      ['u1', 'i1', 5],
      ['u1', 'i2', 3],
      ['ü2', 'i1', 4],
      ['ü2', '日本', 2],
    ]),
    { feedback: 'explicit', similarity: 'pearson' },
  );

  it('round-trips every array and id (UTF-8 ids included)', () => {
    const bytes = encodeInteractionIndex(cf.index);
    const decoded = decodeInteractionIndex(bytes);
    expect(decoded.feedback).toBe('explicit');
    expect(decoded.userIds).toEqual(cf.index.userIds);
    expect(decoded.itemIds).toEqual(cf.index.itemIds);
    for (const key of [
      'userPtr',
      'userItems',
      'userValues',
      'itemPtr',
      'itemUsers',
      'itemValues',
      'means',
      'rawNorms',
      'centredNorms',
    ] as const)
      expect(Array.from(decoded[key]), key).toEqual(Array.from(cf.index[key]));
  });

  it('refuses a truncated or foreign buffer with one line', () => {
    const bytes = encodeInteractionIndex(cf.index);
    expect(() => decodeInteractionIndex(bytes.subarray(0, bytes.length - 3), 's3://b/k')).toThrow(InputError);
    expect(() => decodeInteractionIndex(bytes.subarray(0, bytes.length - 3), 's3://b/k')).toThrow(
      's3://b/k: not a readable recommend index (truncated ids)',
    );
    expect(() => decodeInteractionIndex(Buffer.from('PAR1 and then some more bytes here'))).toThrow(
      'wrong magic number',
    );
  });
});
