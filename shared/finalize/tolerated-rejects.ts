/**
 * A share as the reason prints it: two decimals, no trailing zeros (`37.5`, `100`), more
 * only where two would not show it above the tolerated percent (`10.001`, not `10`).
 */
function percentText(share: number, tolerated: number): string {
  for (let decimals = 2; decimals < 8; decimals++) {
    const shown = Number((share * 100).toFixed(decimals));
    if (shown > tolerated) return String(shown);
  }
  return String(share * 100);
}

/**
 * The tolerated-reject rule (`run.toleratedRejectPercent`, like Step Functions Distributed
 * Map's `ToleratedFailurePercentage`): the one-line reason a run fails when its rejected
 * records are more than `toleratedPercent` of the records it read, undefined when the
 * run passes. Exactly at the share passes; a run of 0 records never fails by it, and
 * 100 tolerates every reject. The comparison is exact (rejected x 100 > percent x
 * records), so 1 of 10 at 10% passes whatever floating point would make of 0.1.
 */
export function rejectFailureOf(
  counts: { readonly records: number; readonly rejected: number },
  toleratedPercent: number,
): string | undefined {
  const { records, rejected } = counts;
  if (records <= 0 || rejected <= 0) return undefined;
  if (rejected * 100 <= toleratedPercent * records) return undefined;
  return `rejects ${percentText(rejected / records, toleratedPercent)}% of ${records} records exceed run.toleratedRejectPercent ${toleratedPercent}`;
}
