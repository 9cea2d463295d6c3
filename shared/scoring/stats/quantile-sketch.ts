/** Serialised {@link QuantileSketch}: sparse bins as parallel arrays sorted by index. */
export interface QuantileSketchState {
  readonly relativeAccuracy: number;
  readonly maxBins: number;
  readonly count: number;
  readonly zeroCount: number;
  readonly positive: BinsState;
  readonly negative: BinsState;
}

interface BinsState {
  readonly index: number[];
  readonly count: number[];
  /** Bins below this index were folded into it to respect maxBins (null = never). */
  readonly collapsedBelow: number | null;
}

/** Magnitudes below this are counted as zero: the absolute error there is under 1e-9. */
export const MIN_INDEXABLE = 1e-9;

/** One sign's bins: bin i holds magnitudes in (gamma^(i-1), gamma^i]. */
class LogBins {
  readonly bins = new Map<number, number>();
  collapsedBelow: number | null = null;

  constructor(private readonly maxBins: number) {}

  add(index: number, count: number): void {
    const i = this.collapsedBelow !== null && index < this.collapsedBelow ? this.collapsedBelow : index;
    const before = this.bins.get(i);
    this.bins.set(i, (before ?? 0) + count);
    if (before === undefined && this.bins.size > this.maxBins) this.collapse();
  }

  /**
   * Folds the lowest-magnitude bins into the lowest one kept, so memory stays bounded;
   * only quantiles that fall in the folded range lose their accuracy guarantee.
   */
  private collapse(): void {
    const sorted = [...this.bins.keys()].sort((a, b) => a - b);
    const floor = sorted[sorted.length - this.maxBins]!;
    let folded = 0;
    for (const i of sorted) {
      if (i >= floor) break;
      folded += this.bins.get(i)!;
      this.bins.delete(i);
    }
    this.bins.set(floor, (this.bins.get(floor) ?? 0) + folded);
    this.collapsedBelow = floor;
  }

  sortedEntries(): [number, number][] {
    return [...this.bins.entries()].sort((a, b) => a[0] - b[0]);
  }

  toJSON(): BinsState {
    const entries = this.sortedEntries();
    return {
      index: entries.map((e) => e[0]),
      count: entries.map((e) => e[1]),
      collapsedBelow: this.collapsedBelow,
    };
  }

  load(state: BinsState): void {
    if (state.collapsedBelow !== null) {
      this.collapsedBelow =
        this.collapsedBelow === null
          ? state.collapsedBelow
          : Math.max(this.collapsedBelow, state.collapsedBelow);
      // Bins of this sketch now under the floor join it.
      for (const [i, c] of [...this.bins]) {
        if (i < this.collapsedBelow) {
          this.bins.delete(i);
          this.bins.set(this.collapsedBelow, (this.bins.get(this.collapsedBelow) ?? 0) + c);
        }
      }
    }
    for (let k = 0; k < state.index.length; k += 1) this.add(state.index[k]!, state.count[k]!);
  }
}

export interface QuantileSketchOptions {
  /** Relative error of every reported quantile (see {@link QuantileSketch}). @default 0.01 */
  readonly relativeAccuracy?: number;
  /** Bins per sign before the smallest magnitudes are folded together. @default 2048 */
  readonly maxBins?: number;
}

/**
 * A mergeable quantile sketch with a relative-error guarantee: a fixed logarithmic
 * histogram (the DDSketch construction). A value x > 0 lands in bin ceil(log_gamma(x))
 * with gamma = (1 + a) / (1 - a); a bin is reported as 2 gamma^i / (gamma + 1), which is
 * within a relative error a of every value the bin can hold. Hence, for the value v at
 * rank floor(q (n - 1)) of the sorted data, `quantile(q)` returns v' with
 * |v' - v| <= a |v| (and |v'| = 0 when |v| < 1e-9), as long as no bin was collapsed
 * below v. Negative values use a mirrored histogram.
 *
 * Bins only ever add counts, so merging is exact: sketches of any split of the data,
 * merged in any order, equal the sketch of the whole (same bins, same answers), unless a
 * side had to collapse bins. Memory is at most `maxBins` bins per sign; with the default
 * a = 1% that covers magnitudes over roughly 17 orders of magnitude before collapsing.
 */
export class QuantileSketch {
  readonly relativeAccuracy: number;
  readonly maxBins: number;
  count = 0;
  zeroCount = 0;
  private readonly logGamma: number;
  private readonly gamma: number;
  private readonly positive: LogBins;
  private readonly negative: LogBins;

  constructor(options: QuantileSketchOptions = {}) {
    this.relativeAccuracy = options.relativeAccuracy ?? 0.01;
    this.maxBins = options.maxBins ?? 2048;
    if (!(this.relativeAccuracy > 0 && this.relativeAccuracy < 1)) {
      throw new RangeError(`relativeAccuracy must be in (0, 1), got ${this.relativeAccuracy}`);
    }
    if (!(Number.isInteger(this.maxBins) && this.maxBins >= 16)) {
      throw new RangeError(`maxBins must be an integer >= 16, got ${this.maxBins}`);
    }
    this.gamma = (1 + this.relativeAccuracy) / (1 - this.relativeAccuracy);
    this.logGamma = Math.log(this.gamma);
    this.positive = new LogBins(this.maxBins);
    this.negative = new LogBins(this.maxBins);
  }

  /** Adds a finite value (NaN and infinities are ignored: count them as missing upstream). */
  add(x: number, weight = 1): void {
    if (!Number.isFinite(x)) return;
    this.count += weight;
    const magnitude = Math.abs(x);
    if (magnitude < MIN_INDEXABLE) this.zeroCount += weight;
    else (x > 0 ? this.positive : this.negative).add(Math.ceil(Math.log(magnitude) / this.logGamma), weight);
  }

  /** Folds `other` into this sketch and returns this; both must share relativeAccuracy and maxBins. */
  merge(other: QuantileSketch | QuantileSketchState): this {
    const state = other instanceof QuantileSketch ? other.toJSON() : other;
    if (state.relativeAccuracy !== this.relativeAccuracy || state.maxBins !== this.maxBins) {
      throw new RangeError(
        `cannot merge a sketch of accuracy ${state.relativeAccuracy}/${state.maxBins} bins into ${this.relativeAccuracy}/${this.maxBins}`,
      );
    }
    this.count += state.count;
    this.zeroCount += state.zeroCount;
    this.positive.load(state.positive);
    this.negative.load(state.negative);
    return this;
  }

  private binValue(index: number): number {
    return (2 * this.gamma ** index) / (this.gamma + 1);
  }

  /**
   * The value at rank floor(q (n - 1)) of the sorted data, within the relative accuracy.
   * NaN when the sketch is empty.
   */
  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be in [0, 1], got ${q}`);
    if (this.count === 0) return Number.NaN;
    const rank = Math.floor(q * (this.count - 1));
    let seen = 0;
    const negatives = this.negative.sortedEntries();
    for (let k = negatives.length - 1; k >= 0; k -= 1) {
      const [index, count] = negatives[k]!;
      seen += count;
      if (seen > rank) return -this.binValue(index);
    }
    seen += this.zeroCount;
    if (seen > rank) return 0;
    const positives = this.positive.sortedEntries();
    for (const [index, count] of positives) {
      seen += count;
      if (seen > rank) return this.binValue(index);
    }
    return positives.length > 0 ? this.binValue(positives[positives.length - 1]![0]) : 0;
  }

  /** Bins in use (both signs), a measure of memory. */
  get binCount(): number {
    return this.positive.bins.size + this.negative.bins.size;
  }

  toJSON(): QuantileSketchState {
    return {
      relativeAccuracy: this.relativeAccuracy,
      maxBins: this.maxBins,
      count: this.count,
      zeroCount: this.zeroCount,
      positive: this.positive.toJSON(),
      negative: this.negative.toJSON(),
    };
  }

  static fromJSON(state: QuantileSketchState): QuantileSketch {
    return new QuantileSketch({ relativeAccuracy: state.relativeAccuracy, maxBins: state.maxBins }).merge(
      state,
    );
  }
}
