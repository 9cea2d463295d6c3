import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Similarity } from '../../shared/jobs/recommend/recommend-config.ts';
import { cfOver, readInteractionsCsv } from './recommend-support.ts';

/*
 * Parity with an independent implementation of the same contract: scripts/peers/user-cf.py
 * (numpy/SciPy sparse products), run once on a generated log and committed, so this test
 * needs no Python. Regenerate with:
 *   npx tsx events/generate-interactions.ts --users 300 --items 120 --interactions 6000 \
 *     --power-users 2 --seed 5 --out test/recommend/fixtures/peer-interactions.csv
 *   F=test/recommend/fixtures; P=scripts/peers/user-cf.py
 *   /usr/bin/python3 $P $F/peer-interactions.csv --value rating --timestamp ts --k 10 --top-n 10 \
 *     --max-item-users 60 --out $F/peer-explicit-pearson.json
 *   /usr/bin/python3 $P $F/peer-interactions.csv --timestamp ts --k 10 --top-n 10 \
 *     --max-item-users 60 --out $F/peer-implicit-cosine.json
 *   /usr/bin/python3 $P $F/peer-interactions.csv --value rating --timestamp ts --similarity cosine \
 *     --k 10 --top-n 10 --out $F/peer-explicit-cosine.json
 */
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

interface PeerOutput {
  readonly similarity: Similarity;
  readonly feedback: 'explicit' | 'implicit';
  readonly settings: {
    k: number;
    shrinkage: number;
    minCommonItems: number;
    minNeighbours: number;
    maxItemUsers: number;
    topN: number;
  };
  readonly cappedItems: number;
  readonly users: Record<
    string,
    { list: [string, number, string, number][]; neighbours: [string, number][] }
  >;
}

const TOLERANCE = 1e-9;

/** Same entries in the same order, except that entries whose scores tie (to rounding) may swap. */
function expectSameRanking(ours: [string, number][], theirs: [string, number][], what: string): void {
  expect(ours.length, what).toBe(theirs.length);
  ours.forEach(([id, score], r) => {
    const [peerId, peerScore] = theirs[r]!;
    expect(Math.abs(score - peerScore), `${what} rank ${r + 1} score`).toBeLessThan(TOLERANCE);
    if (id !== peerId) {
      const swapped = theirs.find(([other]) => other === id);
      expect(swapped, `${what} rank ${r + 1}: ${id} vs ${peerId}`).toBeDefined();
      expect(Math.abs(swapped![1] - score), `${what}: ${id} and ${peerId} differ beyond a tie`).toBeLessThan(
        TOLERANCE,
      );
    }
  });
}

describe.each([
  ['peer-explicit-pearson.json', 'rating'],
  ['peer-implicit-cosine.json', undefined],
  ['peer-explicit-cosine.json', 'rating'],
] as const)('user CF parity with the SciPy peer (%s)', (file, valueField) => {
  const peer = JSON.parse(readFileSync(path.join(fixtures, file), 'utf8')) as PeerOutput;
  const rows = readInteractionsCsv(path.join(fixtures, 'peer-interactions.csv'), {
    format: 'auto',
    userField: 'user_id',
    itemField: 'item_id',
    timestampField: 'ts',
    ...(valueField ? { valueField } : {}),
  });
  const cf = cfOver(rows, { feedback: peer.feedback, similarity: peer.similarity, ...peer.settings });

  it('caps the same number of hot items', () => {
    expect(cf.postings.cappedItems).toBe(peer.cappedItems);
  });

  it('finds the same neighbours with the same shrunk similarities for every user', () => {
    expect(Object.keys(peer.users).sort()).toEqual([...cf.index.userIds]);
    for (const [userId, expected] of Object.entries(peer.users)) {
      const ours = cf.neighboursOf(userId).map((n): [string, number] => [n.user, n.similarity]);
      expectSameRanking(ours, expected.neighbours, `neighbours of ${userId}`);
    }
  });

  it('recommends the same top-N (items, scores, sources, neighbour counts) for every user', () => {
    let cfRows = 0;
    for (const [userId, expected] of Object.entries(peer.users)) {
      const ours = cf.recommend(userId);
      expectSameRanking(
        ours.map((r): [string, number] => [r.item, r.score]),
        expected.list.map(([item, score]): [string, number] => [item, score]),
        `list of ${userId}`,
      );
      const byItem = new Map(expected.list.map(([item, , source, holders]) => [item, { source, holders }]));
      for (const row of ours) {
        expect(byItem.get(row.item), `${userId} ${row.item}`).toEqual({
          source: row.source,
          holders: row.neighbours,
        });
        if (row.source === 'cf') cfRows++;
      }
    }
    // The comparison must cover CF rows, not only popularity fill-in.
    expect(cfRows).toBeGreaterThan(500);
  });
});
