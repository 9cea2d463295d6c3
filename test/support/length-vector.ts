/**
 * A stand-in embedding for tests whose fake model needs no meaning: the text's length, then 1,
 * then zeros, `dimension` floats in all (the test pipelines' `endpoint.dimension` is 16: a
 * vector of another length fails the unit, as a mismatched model does).
 */
export function lengthVector(text: string, dimension = 16): number[] {
  return [text.length, 1, ...new Array<number>(dimension - 2).fill(0)];
}
