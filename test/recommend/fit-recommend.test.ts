import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { summarizeEvaluation } from '../../shared/jobs/recommend/evaluation.ts';
import { fitRecommendations } from '../../shared/jobs/recommend/fit-recommend.ts';
import { popularityOrder } from '../../shared/jobs/recommend/interaction-index.ts';
import { parseRecommendSettings } from '../../shared/jobs/recommend/recommend-config.ts';
import { recommendationRows } from '../../shared/jobs/recommend/user-cf.ts';
import { readInteractionsCsv } from './recommend-support.ts';

const sample = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'events',
  'data',
  'interactions-sample.csv',
);

describe('fitRecommendations on the committed sample (implicit, cosine)', () => {
  const settings = parseRecommendSettings({
    kind: 'recommend',
    input: { timestampField: 'ts' },
    evaluation: { holdoutFraction: 0.2 },
  });
  const rows = readInteractionsCsv(sample, settings.input);
  const fit = fitRecommendations(rows, { ...settings, feedback: 'implicit', similarity: 'cosine' }, 4);

  it('recalls held-out interactions at least 1.5 times as well as the popularity baseline (issue 17 target)', () => {
    const summary = summarizeEvaluation(fit.evaluation!, popularityOrder(fit.index).length);
    expect(summary.users).toBeGreaterThan(1500);
    expect(summary.cf.recall).toBeGreaterThanOrEqual(1.5 * summary.popular.recall);
    expect(summary.cf.coverage).toBeGreaterThan(summary.popular.coverage);
  });

  it('gives every user a list of topN rows with 1-based ranks, CF rows before fill-in', () => {
    expect(fit.shards.reduce((n, s) => n + s.users.length, 0)).toBe(fit.index.userIds.length);
    expect(fit.duplicates).toBeGreaterThan(0);
    for (const list of fit.lists) {
      const table = recommendationRows(fit.index, list, { runId: 'r-1', pipeline: 'recs' });
      expect(table).toHaveLength(20);
      expect(table.map((r) => r.rank)).toEqual(Array.from({ length: 20 }, (_, k) => k + 1));
      const firstFill = table.findIndex((r) => r.source === 'popular');
      if (firstFill >= 0)
        expect(table.slice(firstFill).every((r) => r.source === 'popular' && r.neighbours === 0)).toBe(true);
      expect(new Set(table.map((r) => r.item_id)).size).toBe(20);
    }
    expect(recommendationRows(fit.index, fit.lists[0]!, { runId: 'r-1', pipeline: 'recs' })[0]).toEqual({
      run_id: 'r-1',
      pipeline: 'recs',
      user_id: fit.index.userIds[0],
      rank: 1,
      item_id: expect.any(String),
      score: expect.any(Number),
      source: 'cf',
      neighbours: expect.any(Number),
    });
  });
});
