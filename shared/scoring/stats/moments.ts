/** Serialised {@link Moments}: plain JSON (no Infinity), so partials travel between units. */
export interface MomentsState {
  readonly count: number;
  readonly mean: number;
  /** Sum of squared deviations from the mean (Welford's M2). */
  readonly m2: number;
  /** Meaningful only when count > 0. */
  readonly min: number;
  readonly max: number;
}

/**
 * Count, mean, variance, min and max of a stream of numbers in one pass, mergeable.
 * Values are added with Welford's update, which stays accurate where the naive sum of
 * squares cancels catastrophically (large values, small spread); partials from different
 * units are combined with Chan, Golub and LeVeque's pairwise update, so fitting the parts
 * and merging gives the whole's statistics up to float rounding, in any merge order.
 */
export class Moments {
  count = 0;
  mean = 0;
  m2 = 0;
  min = 0;
  max = 0;

  add(x: number): void {
    this.count += 1;
    const delta = x - this.mean;
    this.mean += delta / this.count;
    this.m2 += delta * (x - this.mean);
    if (this.count === 1) {
      this.min = x;
      this.max = x;
    } else {
      if (x < this.min) this.min = x;
      if (x > this.max) this.max = x;
    }
  }

  /** Folds `other` into this one (Chan et al.'s parallel update) and returns this. */
  merge(other: MomentsState): this {
    if (other.count === 0) return this;
    if (this.count === 0) {
      this.count = other.count;
      this.mean = other.mean;
      this.m2 = other.m2;
      this.min = other.min;
      this.max = other.max;
      return this;
    }
    const count = this.count + other.count;
    const delta = other.mean - this.mean;
    this.mean += (delta * other.count) / count;
    this.m2 += other.m2 + (delta * delta * this.count * other.count) / count;
    this.count = count;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }

  /** Population variance (divides by n, as scikit-learn's StandardScaler does); 0 when empty. */
  get variance(): number {
    return this.count > 0 ? Math.max(0, this.m2 / this.count) : 0;
  }

  get std(): number {
    return Math.sqrt(this.variance);
  }

  toJSON(): MomentsState {
    return { count: this.count, mean: this.mean, m2: this.m2, min: this.min, max: this.max };
  }

  static fromJSON(state: MomentsState): Moments {
    return new Moments().merge(state);
  }
}
