import { describe, expect, it } from 'vitest';
import {
  EMBEDDINGS_HOLD_DAYS,
  ENTRY_REFRESH_DAYS,
  embeddingsHeldUntil,
  entryIsFresh,
  runStartOf,
} from '../../shared/incremental/entry-refresh.ts';
import { newRunId } from '../../shared/output/keys.ts';

describe('entry refresh', () => {
  it("reads a run's start from its id, to the second, and nothing from an id of another form", () => {
    const at = new Date('2026-12-08T02:03:04.567Z');
    expect(runStartOf(newRunId(at))).toBe(Date.parse('2026-12-08T02:03:04Z'));
    for (const id of ['r-old', 'earlier', 'r-20260231T000000Z-abcdef', 'r-20261208T250000Z-abcdef', ''])
      expect(runStartOf(id)).toBeUndefined();
  });

  it('calls an entry fresh while its run started under 7 days before this one', () => {
    expect(ENTRY_REFRESH_DAYS).toBe(7);
    const now = 'r-20261208T020000Z-aaaaaa';
    expect(entryIsFresh(now, 'r-20261201T020001Z-bbbbbb')).toBe(true);
    expect(entryIsFresh(now, 'r-20261201T020000Z-bbbbbb')).toBe(false);
    expect(entryIsFresh(now, now)).toBe(true);
    expect(entryIsFresh(now, 'r-20261209T000000Z-bbbbbb')).toBe(true);
    expect(entryIsFresh(now, 'r-old')).toBe(false);
    expect(entryIsFresh('r-local', 'r-20261208T020000Z-aaaaaa')).toBe(false);
  });

  it("holds a run's embeddings a day past the refresh period", () => {
    expect(EMBEDDINGS_HOLD_DAYS).toBe(8);
    expect(embeddingsHeldUntil('r-20261201T020000Z-bbbbbb')?.toISOString()).toBe('2026-12-09T02:00:00.000Z');
    expect(embeddingsHeldUntil('r-old')).toBeUndefined();
  });
});
