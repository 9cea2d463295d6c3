import { describe, expect, it } from 'vitest';
import type { ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { emptyCounts } from '../../shared/domain/types.ts';
import { EndpointUnavailable, ModelError } from '../../shared/errors/errors.ts';
import {
  BatchScorer,
  type PendingRow,
  positiveOptionsOf,
  requestsOf,
  scoreOf,
} from '../../shared/jobs/score/score-batch.ts';
import type { ScoringEndpoint } from '../../shared/ports/scoring-endpoint.ts';
import { SegmentAggregator } from '../../shared/scoring/aggregates/segment-aggregates.ts';

const row = (n: number): PendingRow => ({
  id: `r${n}`,
  values: { x: n },
  metadata: {},
  sourceKey: 's.csv',
  line: n + 1,
  byteOffset: n * 10,
});

const config = {
  model: { modelId: 'm', modelKey: 'k', scoreClass: 1 },
  segments: { columns: [] },
} as unknown as ScorePipelineConfig;

/** A scorer over rows whose one feature is their number; the endpoint echoes it as the score. */
function scorerFor(n: number, refuse: (x: number) => boolean, maxPayloadBytes = 1 << 20) {
  const requests: number[][] = [];
  const endpoint: ScoringEndpoint = {
    async score(csv) {
      const xs = csv.trim().split('\n').map(Number);
      requests.push(xs);
      if (xs.some(refuse)) throw new ModelError('bad row', 400);
      return xs.map((x) => `${x / 10}`).join('\n');
    },
  };
  const segments = new SegmentAggregator({ segmentColumns: [] });
  const deps = { endpoint, counts: emptyCounts(), segments, maxPayloadBytes };
  const scorer = new BatchScorer(deps, config, {}, 1, n);
  const rows = Array.from({ length: n }, (_, i) => row(i));
  const features = Float64Array.from(rows, (_, i) => i);
  return { scorer, rows, features, requests };
}

describe('BatchScorer', () => {
  it('bisects a refused request down to the row, rejects it and scores the rest in place', async () => {
    const { scorer, rows, features, requests } = scorerFor(4, (x) => x === 2);
    await scorer.score(rows, features, 0);
    expect(requests).toEqual([[0, 1, 2, 3], [0, 1], [2, 3], [2], [3]]);
    expect(scorer.scored.map((r) => r?.score)).toEqual([0, 0.1, undefined, 0.3]);
    expect(scorer.refused.map((r) => [r.line, r.reason])).toEqual([[3, 'model rejected the row: bad row']]);
  });

  it('halves a request over the payload limit before sending it', async () => {
    const { scorer, rows, features, requests } = scorerFor(4, () => false, 3);
    await scorer.score(rows, features, 0);
    expect(requests).toEqual([[0], [1], [2], [3]]);
    expect(scorer.scored.map((r) => r?.record_id)).toEqual(['r0', 'r1', 'r2', 'r3']);
  });
});

describe('score steps', () => {
  it('scoreOf takes the only output or the scoreClass one, and names a missing class', () => {
    expect(scoreOf([0.7], 1)).toBe(0.7);
    expect(scoreOf([0.2, 0.8], 1)).toBe(0.8);
    expect(() => scoreOf([0.2, 0.8], 2)).toThrow(EndpointUnavailable);
  });

  it('requestsOf cuts rows and features into requests with their first position', () => {
    const data = Float64Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    const requests = requestsOf([0, 1, 2, 3, 4].map(row), data, 2, 2);
    expect(requests.map((r) => [r.first, r.rows.length, [...r.features]])).toEqual([
      [0, 2, [0, 0, 1, 1]],
      [2, 2, [2, 2, 3, 3]],
      [4, 1, [4, 4]],
    ]);
  });

  it('positiveOptionsOf reads an outcome column or a threshold', () => {
    expect(positiveOptionsOf(undefined)).toEqual({});
    expect(positiveOptionsOf({ column: 'y' } as never)).toEqual({ outcomeColumn: 'y' });
    expect(positiveOptionsOf({ threshold: 0.5 } as never)).toEqual({ threshold: 0.5 });
  });
});
