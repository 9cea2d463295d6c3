export interface BatchLimits {
  /** Padded tokens per request: the longest input's tokens x inputs. @default 16384 */
  readonly maxBatchTokens: number;
  /** Inputs per request. @default 32 */
  readonly maxBatchSize: number;
}

/**
 * Sorts items by token length and cuts them into batches whose padded size (longest
 * x count) stays within the budget. Sorting first keeps padding waste small; an item
 * that alone exceeds the budget travels alone (the endpoint truncates it).
 */
export function cutTokenBudgetBatches<T>(
  items: readonly T[],
  tokensOf: (item: T) => number,
  limits: BatchLimits,
): T[][] {
  const sorted = [...items].sort((a, b) => tokensOf(a) - tokensOf(b));
  const batches: T[][] = [];
  let current: T[] = [];
  for (const item of sorted) {
    const longest = tokensOf(item); // ascending order: the newest item is the longest
    if (
      current.length > 0 &&
      (current.length >= limits.maxBatchSize || longest * (current.length + 1) > limits.maxBatchTokens)
    ) {
      batches.push(current);
      current = [];
    }
    current.push(item);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Padded tokens of a batch as the endpoint sees it. */
export function paddedTokens(tokenCounts: readonly number[]): number {
  let longest = 0;
  for (const t of tokenCounts) longest = Math.max(longest, t);
  return longest * tokenCounts.length;
}
