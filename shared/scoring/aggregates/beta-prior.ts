/** A Beta(alpha, beta) prior on segment rates, and how it was obtained. */
export interface BetaPrior {
  readonly alpha: number;
  readonly beta: number;
  /** `moments`: fitted to the segments; `weak`: too little information, a 2-observation prior at the pooled rate. */
  readonly method: 'moments' | 'weak';
  /** Segments with at least one trial that informed the fit. */
  readonly segments: number;
}

export interface RateCounts {
  readonly positives: number;
  readonly trials: number;
}

export interface BetaPriorOptions {
  /** Fewer segments with trials than this fall back to the weak prior. @default 5 */
  readonly minSegments?: number;
}

/** Strength (alpha + beta) of the weak fallback prior: two pseudo-observations. */
export const WEAK_PRIOR_STRENGTH = 2;

function weakPrior(positives: number, trials: number, segments: number): BetaPrior {
  // Laplace-smoothed pooled rate: never exactly 0 or 1, 0.5 with no data at all.
  const mean = (positives + 1) / (trials + 2);
  return {
    alpha: WEAK_PRIOR_STRENGTH * mean,
    beta: WEAK_PRIOR_STRENGTH * (1 - mean),
    method: 'weak',
    segments,
  };
}

/**
 * Fits a Beta prior to segment rates by the method of moments (empirical Bayes, as in a
 * beta-binomial model). With pooled rate m = sum(k) / sum(n) over S segments and N
 * trials, the trial-weighted variance of the observed rates is
 * v = sum(n_i (k_i/n_i - m)^2) / N, whose expectation under the beta-binomial is
 * m (1 - m) (S + rho (N - S)) / N with rho = 1 / (alpha + beta + 1). Solving for rho
 * separates the spread between segments from binomial noise:
 *
 *   rho = (N v / (m (1 - m)) - S) / (N - S),   alpha + beta = 1 / rho - 1,
 *   alpha = m (alpha + beta),                   beta = (1 - m) (alpha + beta).
 *
 * The strength alpha + beta is kept within [1, N]: at least one pseudo-observation, and
 * at most as many as the data (when the segments differ no more than noise, rho <= 0,
 * every segment is shrunk to the pooled rate as far as the data allow). It falls back to
 * a weak prior (two pseudo-observations at the Laplace-smoothed pooled rate) when fewer
 * than `minSegments` segments have trials, when no segment has more than one trial, or
 * when the pooled rate is exactly 0 or 1 (no variation to fit).
 */
export function fitBetaPrior(counts: readonly RateCounts[], options: BetaPriorOptions = {}): BetaPrior {
  const minSegments = options.minSegments ?? 5;
  const informed = counts.filter((c) => c.trials > 0);
  const S = informed.length;
  let K = 0;
  let N = 0;
  for (const c of informed) {
    K += c.positives;
    N += c.trials;
  }
  if (S < minSegments || N <= S || K === 0 || K === N) return weakPrior(K, N, S);
  const m = K / N;
  let v = 0;
  for (const c of informed) v += c.trials * (c.positives / c.trials - m) ** 2;
  v /= N;
  const rho = ((N * v) / (m * (1 - m)) - S) / (N - S);
  const strength = rho > 0 ? Math.min(N, Math.max(1, 1 / rho - 1)) : N;
  return { alpha: m * strength, beta: (1 - m) * strength, method: 'moments', segments: S };
}

/** k / n, or null without trials. */
export function rateMle({ positives, trials }: RateCounts): number | null {
  return trials > 0 ? positives / trials : null;
}

/**
 * The Bayes estimate of a segment's rate under the prior: the posterior mean
 * (k + alpha) / (n + alpha + beta), the prior mean without trials. Reported as the
 * "MAP" rate. The posterior mean is used rather than the posterior mode, because the
 * mode of Beta(k + alpha, n - k + beta) sits at exactly 0 whenever k = 0 and alpha <= 1,
 * the very 0% this estimate exists to avoid; with alpha, beta > 0 the mean never does.
 */
export function rateMap({ positives, trials }: RateCounts, prior: BetaPrior): number {
  return (positives + prior.alpha) / (trials + prior.alpha + prior.beta);
}
