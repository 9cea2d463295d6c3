import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  normalizeL2,
  POOLING_MODES,
  poolingModesFrom,
  poolTokens,
  type TokenEmbeddings,
} from '../../cli/model-server/onnx-pooling.ts';
import { ConfigError } from '../../shared/errors/errors.ts';

/** One row of three tokens, width 2, the last one padding with loud values. */
const row: TokenEmbeddings = {
  data: Float32Array.from([1, 2, 3, -4, 100, 100]),
  batch: 1,
  sequence: 3,
  width: 2,
  mask: Uint8Array.from([1, 1, 0]),
};
const values = (vectors: Float32Array[]) => vectors.map((v) => Array.from(v));

describe('poolTokens', () => {
  it('pools real tokens only, as sentence-transformers does for each mode', () => {
    expect(values(poolTokens(row, ['mean']))).toEqual([[2, -1]]);
    expect(values(poolTokens(row, ['cls']))).toEqual([[1, 2]]);
    expect(values(poolTokens(row, ['max']))).toEqual([[3, 2]]);
    expect(values(poolTokens(row, ['lasttoken']))).toEqual([[3, -4]]);
    // (1*[1, 2] + 2*[3, -4]) / 3
    expect(poolTokens(row, ['weightedmean'])[0]![0]).toBeCloseTo(7 / 3, 6);
    expect(poolTokens(row, ['weightedmean'])[0]![1]).toBeCloseTo(-6 / 3, 6);
    // sum / sqrt(2)
    expect(poolTokens(row, ['mean_sqrt_len'])[0]![0]).toBeCloseTo(4 / Math.SQRT2, 6);
  });

  it('concatenates several modes in sentence-transformers order (cls, max, mean, ...)', () => {
    expect(values(poolTokens(row, ['mean', 'cls']))).toEqual([[1, 2, 2, -1]]);
  });

  it('gives a row the same vector alone and padded beside a longer one', () => {
    const token = fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 3, maxLength: 3 });
    fc.assert(
      fc.property(
        fc.array(token, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.constantFrom(...POOLING_MODES),
        (tokens, extra, mode) => {
          const alone: TokenEmbeddings = {
            data: Float32Array.from(tokens.flat()),
            batch: 1,
            sequence: tokens.length,
            width: 3,
            mask: new Uint8Array(tokens.length).fill(1),
          };
          const sequence = tokens.length + extra;
          const data = new Float32Array(2 * sequence * 3).fill(50);
          data.set(tokens.flat(), 0);
          const mask = new Uint8Array(2 * sequence).fill(1);
          mask.fill(0, tokens.length, sequence);
          const [padded] = poolTokens({ data, batch: 2, sequence, width: 3, mask }, [mode]);
          expect(Array.from(padded!)).toEqual(Array.from(poolTokens(alone, [mode])[0]!));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('normalizeL2', () => {
  it('scales to unit length and leaves a zero vector at zero', () => {
    expect(Array.from(normalizeL2(Float32Array.from([3, 4])))).toEqual([
      0.6000000238418579, 0.800000011920929,
    ]);
    expect(Array.from(normalizeL2(new Float32Array(2)))).toEqual([0, 0]);
  });
});

describe('poolingModesFrom', () => {
  it('reads the pooling_mode_* booleans or a pooling_mode name', () => {
    expect(poolingModesFrom({ pooling_mode_mean_tokens: true }, 'p')).toEqual(['mean']);
    expect(poolingModesFrom({ pooling_mode_cls_token: true, pooling_mode_max_tokens: true }, 'p')).toEqual([
      'cls',
      'max',
    ]);
    expect(poolingModesFrom({ pooling_mode: 'lasttoken' }, 'p')).toEqual(['lasttoken']);
  });

  it('refuses a config that turns on nothing, or names an unknown mode, naming the file', () => {
    expect(() => poolingModesFrom({ pooling_mode_mean_tokens: false }, '1_Pooling/config.json')).toThrow(
      /1_Pooling\/config.json: turns on no pooling mode/,
    );
    expect(() => poolingModesFrom({ pooling_mode: 'median' }, 'p')).toThrow(ConfigError);
  });
});
