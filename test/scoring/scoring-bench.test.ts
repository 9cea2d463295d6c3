import { describe, expect, it } from 'vitest';
import { runScoringBench } from '../../bench/scoring.ts';

describe('runScoringBench', () => {
  it('reports that the baseline is missing instead of failing when python xgboost is absent', async () => {
    const result = await runScoringBench({ python: '/nonexistent/python3' });
    expect(result).toEqual({
      name: 'scoring',
      available: false,
      reason:
        'python xgboost is not importable by /nonexistent/python3; install it with: apt-get install -y python3-xgboost',
    });
  });
});
