import { describe, expect, it } from 'vitest';
import { cfOver, interactions } from './recommend-support.ts';

describe('cosine similarity on implicit feedback', () => {
  // a {1,2,3}, b {1,2,4}, c {1,2,3,5}; every value 1, so ||a|| = ||b|| = √3, ||c|| = 2.
  //   a-b: n = 2, dot 2, s = 2/3,           s' = 2/3 · 2/12  = 1/9      ≈ 0.111111
  //   a-c: n = 3, dot 3, s = 3/(2√3) = √3/2, s' = √3/2 · 3/13 ≈ 0.199852
  //   b-c: n = 2, dot 2, s = 2/(2√3),        s' = 1/√3 · 2/12 ≈ 0.096225
  const rows = interactions([
    ['a', '1'],
    ['a', '2'],
    ['a', '3'],
    ['b', '1'],
    ['b', '2'],
    ['b', '4'],
    ['c', '1'],
    ['c', '2'],
    ['c', '3'],
    ['c', '5'],
  ]);

  it("shrinks by n/(n + λ) and orders neighbours by s' descending", () => {
    const cf = cfOver(rows, { feedback: 'implicit', similarity: 'cosine' });
    const neighbours = cf.neighboursOf('a');
    expect(neighbours.map((n) => n.user)).toEqual(['c', 'b']);
    expect(neighbours[0]!.similarity).toBeCloseTo((Math.sqrt(3) / 2) * (3 / 13), 12);
    expect(neighbours[1]!.similarity).toBeCloseTo(1 / 9, 12);
    expect(neighbours.map((n) => n.common)).toEqual([3, 2]);
    expect(cf.neighboursOf('b')[1]!.similarity).toBeCloseTo((1 / Math.sqrt(3)) * (2 / 12), 12);
  });

  it("scores implicit candidates by the sum of s' of the neighbours holding them", () => {
    // minNeighbours 1: 5 (held by c) = 0.199852, 4 (held by b) = 0.111111.
    const cf = cfOver(rows, { feedback: 'implicit', similarity: 'cosine', minNeighbours: 1 });
    expect(cf.recommend('a')).toEqual([
      { item: '5', score: expect.closeTo((Math.sqrt(3) / 2) * (3 / 13), 12), source: 'cf', neighbours: 1 },
      { item: '4', score: expect.closeTo(1 / 9, 12), source: 'cf', neighbours: 1 },
    ]);
  });

  it('fills with popular unseen items (ties by item id) scored by their user count when no candidate has enough neighbours', () => {
    // minNeighbours 2: 4 and 5 are each held by one neighbour, so no CF candidate; both have 1 user.
    const cf = cfOver(rows, { feedback: 'implicit', similarity: 'cosine' });
    expect(cf.recommend('a')).toEqual([
      { item: '4', score: 1, source: 'popular', neighbours: 0 },
      { item: '5', score: 1, source: 'popular', neighbours: 0 },
    ]);
  });

  it('requires n_uv >= minCommonItems', () => {
    // a-b and b-c share 2 items, a-c 3: with minCommonItems 3 only a-c qualifies.
    const cf = cfOver(rows, { feedback: 'implicit', similarity: 'cosine', minCommonItems: 3 });
    expect(cf.neighboursOf('a').map((n) => n.user)).toEqual(['c']);
    expect(cf.neighboursOf('b')).toEqual([]);
  });

  it("breaks ties in s' by user id ascending, as strings, and keeps the top k", () => {
    // '10', '9' and 'x' hold the same items as 'x': s' ties for '10' and '9'; '10' < '9' as strings.
    const tied = interactions([
      ['x', 'p'],
      ['x', 'q'],
      ['9', 'p'],
      ['9', 'q'],
      ['10', 'p'],
      ['10', 'q'],
    ]);
    expect(
      cfOver(tied, { feedback: 'implicit', similarity: 'cosine' })
        .neighboursOf('x')
        .map((n) => n.user),
    ).toEqual(['10', '9']);
    expect(
      cfOver(tied, { feedback: 'implicit', similarity: 'cosine', k: 1 })
        .neighboursOf('x')
        .map((n) => n.user),
    ).toEqual(['10']);
  });

  it('breaks ties in score by item id ascending and stops at top N', () => {
    // u's neighbours v and w (identical to u on {a,b}) both hold z2 and z1: equal scores, z1 first.
    const rows2 = interactions([
      ['u', 'a'],
      ['u', 'b'],
      ['v', 'a'],
      ['v', 'b'],
      ['v', 'z2'],
      ['v', 'z1'],
      ['w', 'a'],
      ['w', 'b'],
      ['w', 'z1'],
      ['w', 'z2'],
    ]);
    const list = cfOver(rows2, { feedback: 'implicit', similarity: 'cosine', topN: 1 }).recommend('u');
    expect(list.map((r) => r.item)).toEqual(['z1']);
  });
});

describe('pearson similarity and the explicit prediction', () => {
  // u1: i1 5, i2 3, i3 4 -> mu 4, centred ( 1, -1, 0),          norm √2
  // u2: i1 4, i2 2, i4 3 -> mu 3, centred ( 1, -1, 0),          norm √2
  // u3: i1 2, i2 4, i4 3, i5 5 -> mu 3.5, (-1.5, .5, -.5, 1.5),  norm √5
  // u4: i1 5, i2 1, i4 2, i5 4 -> mu 3, centred ( 2, -2, -1, 1), norm √10
  //   u1-u2: I = {i1,i2}, dot 1+1 = 2,       s = 2/(√2√2) = 1
  //   u1-u3: I = {i1,i2}, dot -1.5-0.5 = -2, s < 0: never a neighbour
  //   u1-u4: I = {i1,i2}, dot 2+2 = 4,       s = 4/√20 ≈ 0.894427
  // λ = 10: s'(u1,u2) = 2/12 ≈ 0.166667, s'(u1,u4) = 0.894427 · 2/12 ≈ 0.149071
  // Candidate i4 (held by u2 and u4): 4 + (s'12·(3-3) + s'14·(2-3)) / (s'12 + s'14) = 4 - 0.472136 = 3.527864
  // i5 is held by u4 only among N(u1) (u3 is not a neighbour): not a candidate with minNeighbours 2.
  // Fill: users per item i1 4, i2 4, i4 3, i5 2, i3 1 -> i5 (score 2) is the only unseen, unlisted one.
  const rows = interactions([
    ['u1', 'i1', 5],
    ['u1', 'i2', 3],
    ['u1', 'i3', 4],
    ['u2', 'i1', 4],
    ['u2', 'i2', 2],
    ['u2', 'i4', 3],
    ['u3', 'i1', 2],
    ['u3', 'i2', 4],
    ['u3', 'i4', 3],
    ['u3', 'i5', 5],
    ['u4', 'i1', 5],
    ['u4', 'i2', 1],
    ['u4', 'i4', 2],
    ['u4', 'i5', 4],
  ]);

  it("centres on each user's mean over all of the user's items and drops negative similarities", () => {
    const neighbours = cfOver(rows, { feedback: 'explicit', similarity: 'pearson' }).neighboursOf('u1');
    expect(neighbours.map((n) => n.user)).toEqual(['u2', 'u4']);
    expect(neighbours[0]!.similarity).toBeCloseTo(2 / 12, 12);
    expect(neighbours[1]!.similarity).toBeCloseTo((4 / Math.sqrt(20)) * (2 / 12), 12);
  });

  it("predicts mu_u + Σ s'(r_vi - mu_v) / Σ|s'| and fills the rest with popular items", () => {
    const sa = 2 / 12;
    const sb = (4 / Math.sqrt(20)) * (2 / 12);
    expect(cfOver(rows, { feedback: 'explicit', similarity: 'pearson', topN: 3 }).recommend('u1')).toEqual([
      {
        item: 'i4',
        score: expect.closeTo(4 + (sa * 0 + sb * -1) / (sa + sb), 12),
        source: 'cf',
        neighbours: 2,
      },
      { item: 'i5', score: 2, source: 'popular', neighbours: 0 },
    ]);
  });

  it('gives a user whose centred norm is 0 no neighbours', () => {
    const flat = [
      ...rows,
      ...interactions([
        ['u5', 'i1', 3],
        ['u5', 'i2', 3],
        ['u5', 'i4', 3],
      ]),
    ];
    const cf = cfOver(flat, { feedback: 'explicit', similarity: 'pearson' });
    expect(cf.neighboursOf('u5')).toEqual([]);
    expect(cf.neighboursOf('u1').map((n) => n.user)).not.toContain('u5');
    expect(cf.recommend('u5').every((r) => r.source === 'popular')).toBe(true);
  });
});
