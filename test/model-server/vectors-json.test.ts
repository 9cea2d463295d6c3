import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { vectorsJson } from '../../cli/model-server/server.ts';

/** What the server answered before `vectorsJson` was written for speed. */
const reference = (vectors: readonly Float32Array[]) =>
  JSON.stringify(vectors.map((v) => Array.from(v, (x) => Math.round(x * 1e7) / 1e7)));

describe('vectorsJson', () => {
  it('prints exactly what JSON.stringify prints, for any float32 values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float32Array({ maxLength: 40 }), { maxLength: 8 }),
        fc.boolean(),
        (vectors, finiteOnly) => {
          const input = finiteOnly
            ? vectors.map((v) => v.map((x) => (Number.isFinite(x) ? x : 0.5)))
            : vectors;
          expect(vectorsJson(input)).toBe(reference(input));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps -0, subnormals, large values and non-finite ones as JSON has them', () => {
    const vectors = [
      Float32Array.of(-0, 1e-45, -1.17549435e-38, 3.4028235e38, 0.1, -0.00000004),
      Float32Array.of(Number.NaN, Number.POSITIVE_INFINITY, 1),
    ];
    expect(vectorsJson(vectors)).toBe(reference(vectors));
    expect(JSON.parse(vectorsJson([vectors[0]!]))).toEqual([[0, 0, 0, 3.4028234663852886e38, 0.1, 0]]);
    expect(vectorsJson([])).toBe('[]');
  });
});
