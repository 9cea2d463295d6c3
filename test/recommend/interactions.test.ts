import { describe, expect, it } from 'vitest';
import { parseInteraction, timestampOf } from '../../shared/jobs/recommend/interaction.ts';
import { InteractionLogBuilder } from '../../shared/jobs/recommend/interaction-log.ts';
import { parseRecommendSettings, similarityOf } from '../../shared/jobs/recommend/recommend-config.ts';
import { interactions } from './recommend-support.ts';

const fields = {
  format: 'auto',
  userField: 'user',
  itemField: 'item',
  valueField: 'stars',
  timestampField: 'at',
} as const;

describe('parseInteraction', () => {
  it('reads ids as strings, numeric values and ISO 8601 or epoch-second timestamps', () => {
    expect(
      parseInteraction({ user: 42, item: 'b', stars: '4.5', at: '2026-03-01T00:00:00Z' }, fields),
    ).toEqual({
      ok: true,
      interaction: { userId: '42', itemId: 'b', value: 4.5, timestamp: Date.UTC(2026, 2, 1) / 1000 },
    });
    expect(parseInteraction({ user: 'a', item: 'b', stars: 3, at: '1767225600' }, fields)).toEqual({
      ok: true,
      interaction: { userId: 'a', itemId: 'b', value: 3, timestamp: 1767225600 },
    });
    expect(parseInteraction({ user: 'a', item: 'b', stars: 3 }, fields)).toEqual({
      ok: true,
      interaction: { userId: 'a', itemId: 'b', value: 3 },
    });
  });

  it.each([
    [{ item: 'b', stars: 3 }, 'missing user (field user)'],
    [{ user: '', item: 'b', stars: 3 }, 'missing user (field user)'],
    [{ user: { id: 1 }, item: 'b', stars: 3 }, 'missing user (field user)'],
    [{ user: 'a', stars: 3 }, 'missing item (field item)'],
    [{ user: 'a', item: 'b', stars: 'five' }, 'non-numeric value "five" (field stars)'],
    [{ user: 'a', item: 'b' }, 'non-numeric value missing (field stars)'],
    [{ user: 'a', item: 'b', stars: 3, at: 'yesterday' }, 'bad timestamp "yesterday"'],
    [{ user: 'a', item: 'b', stars: 3, at: '2026-13-45' }, 'bad timestamp "2026-13-45"'],
  ])('rejects %j with a reason', (record, reason) => {
    const parsed = parseInteraction(record, fields);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.reason).toContain(reason);
  });

  it('gives implicit feedback the value 1 whatever the record holds', () => {
    const implicit = { format: 'auto', userField: 'user', itemField: 'item' } as const;
    expect(parseInteraction({ user: 'a', item: 'b', stars: 'x' }, implicit)).toEqual({
      ok: true,
      interaction: { userId: 'a', itemId: 'b', value: 1 },
    });
  });

  it('accepts date-only and offset ISO timestamps', () => {
    expect(timestampOf('2026-03-01')).toBe(Date.UTC(2026, 2, 1) / 1000);
    expect(timestampOf('2026-03-01T02:00:00+02:00')).toBe(Date.UTC(2026, 2, 1) / 1000);
    expect(timestampOf('03/01/2026')).toBeUndefined();
  });
});

describe('deduplicating (user, item) pairs', () => {
  const valuesAndDuplicates = (builder: InteractionLogBuilder) => {
    const { log, duplicates } = builder.build();
    return { values: Array.from(log.values), duplicates };
  };
  const explicit = (rows: Parameters<typeof interactions>[0]) => {
    const builder = new InteractionLogBuilder('explicit');
    for (const row of interactions(rows)) builder.add(row);
    return valuesAndDuplicates(builder);
  };

  it('keeps the value with the latest timestamp', () => {
    expect(
      explicit([
        ['u', 'i', 3, 10],
        ['u', 'i', 5, 5],
      ]),
    ).toEqual({ values: [3], duplicates: 1 });
  });

  it('keeps the largest value when timestamps tie or are absent', () => {
    expect(
      explicit([
        ['u', 'i', 2, 7],
        ['u', 'i', 4, 7],
        ['u', 'i', 1, 7],
      ]),
    ).toEqual({ values: [4], duplicates: 2 });
    expect(
      explicit([
        ['u', 'i', 4],
        ['u', 'i', 3],
      ]),
    ).toEqual({ values: [4], duplicates: 1 });
  });

  it('lets a present timestamp win over an absent one', () => {
    expect(
      explicit([
        ['u', 'i', 5],
        ['u', 'i', 2, 1],
      ]),
    ).toEqual({ values: [2], duplicates: 1 });
  });

  it('keeps one interaction of value 1 for implicit feedback', () => {
    const builder = new InteractionLogBuilder('implicit');
    for (const row of interactions([
      ['u', 'i', 7],
      ['u', 'i', 9],
      ['u', 'j', 3],
    ]))
      builder.add(row);
    expect(valuesAndDuplicates(builder)).toEqual({ values: [1, 1], duplicates: 1 });
  });

  it('orders users and items by id as strings', () => {
    const builder = new InteractionLogBuilder('implicit');
    for (const row of interactions([
      ['9', 'b'],
      ['10', 'a'],
      ['9', 'a'],
    ]))
      builder.add(row);
    const { log } = builder.build();
    expect(log.userIds).toEqual(['10', '9']);
    expect(log.itemIds).toEqual(['a', 'b']);
    expect(Array.from(log.userPtr)).toEqual([0, 1, 3]);
    expect(Array.from(log.items)).toEqual([0, 0, 1]);
  });
});

describe('recommend settings', () => {
  it("fills the contract's defaults", () => {
    const settings = parseRecommendSettings({ kind: 'recommend' });
    expect(settings).toMatchObject({
      input: { userField: 'user_id', itemField: 'item_id' },
      neighbours: { k: 40, shrinkage: 10, minCommonItems: 2, minNeighbours: 2, maxItemUsers: 5000 },
      output: { table: 'recommendations', topN: 20 },
      evaluation: { holdoutFraction: 0 },
    });
    expect(similarityOf(settings)).toBe('cosine');
    expect(similarityOf(parseRecommendSettings({ kind: 'recommend', input: { valueField: 'rating' } }))).toBe(
      'pearson',
    );
  });

  it('rejects unknown keys naming the path', () => {
    expect(() =>
      parseRecommendSettings({ kind: 'recommend', neighbours: { kk: 3 } }, 'pipelines/recs.json'),
    ).toThrow('pipelines/recs.json: neighbours.kk: unknown key');
  });
});
