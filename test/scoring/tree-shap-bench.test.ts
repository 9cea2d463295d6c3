import { describe, expect, it } from 'vitest';
import { runTreeShapBench } from '../../bench/tree-shap.ts';

describe('runTreeShapBench', () => {
  it('reports that the baseline is missing instead of failing when python xgboost is absent', async () => {
    const result = await runTreeShapBench({ python: '/nonexistent/python3' });
    expect(result).toEqual({
      name: 'tree-shap',
      available: false,
      reason:
        'python xgboost/sklearn are not importable by /nonexistent/python3; install them with: apt-get install -y python3-xgboost python3-sklearn',
    });
  });
});
