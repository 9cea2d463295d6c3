const INITIAL_SLOTS = 64;
const MAX_LOAD = 0.75;

/** A memtable's entries in hash order, as {@link Memtable.sorted} returns them. */
export interface SortedEntries {
  readonly hashes: Float64Array;
  readonly offsets: Float64Array;
  readonly lengths: Uint32Array;
}

/**
 * The recent writes of an index: an open-addressing table (linear probing) of 52-bit key
 * hashes to a record's offset and length in the data log, 20 bytes a slot in typed
 * arrays. It holds at most a few tens of thousands of entries before it is written out
 * as a run, so it never needs to be cut into shards. A table that has been written out
 * is left as it is (lookups that started before may still read it) and a new one begins.
 */
export class Memtable {
  /** Hash + 1 per slot; 0 marks an empty slot. */
  private tags = new Float64Array(INITIAL_SLOTS);
  private offsets = new Float64Array(INITIAL_SLOTS);
  private lengths = new Uint32Array(INITIAL_SLOTS);
  size = 0;

  /** Bytes held by the typed arrays. */
  get bytes(): number {
    return this.tags.byteLength + this.offsets.byteLength + this.lengths.byteLength;
  }

  /** A slot for {@link offsetAt} and {@link lengthAt}, or -1 when no entry has this hash. */
  find(hash: number): number {
    const tag = hash + 1;
    const mask = this.tags.length - 1;
    for (let slot = (tag >>> 0) & mask; ; slot = (slot + 1) & mask) {
      const found = this.tags[slot];
      if (found === tag) return slot;
      if (found === 0) return -1;
    }
  }

  offsetAt(slot: number): number {
    return this.offsets[slot]!;
  }

  lengthAt(slot: number): number {
    return this.lengths[slot]!;
  }

  /** Points `hash` at a record; returns the length it pointed at before, or -1 if it was new. */
  set(hash: number, offset: number, length: number): number {
    if (this.size + 1 > this.tags.length * MAX_LOAD) this.grow();
    const tag = hash + 1;
    const mask = this.tags.length - 1;
    let slot = (tag >>> 0) & mask;
    for (; this.tags[slot] !== 0; slot = (slot + 1) & mask) {
      if (this.tags[slot] === tag) {
        const previous = this.lengths[slot]!;
        this.offsets[slot] = offset;
        this.lengths[slot] = length;
        return previous;
      }
    }
    this.tags[slot] = tag;
    this.offsets[slot] = offset;
    this.lengths[slot] = length;
    this.size += 1;
    return -1;
  }

  /** Every entry, in ascending hash order. */
  sorted(): SortedEntries {
    const hashes = new Float64Array(this.size);
    let n = 0;
    for (const tag of this.tags) if (tag !== 0) hashes[n++] = tag - 1;
    hashes.sort();
    const offsets = new Float64Array(this.size);
    const lengths = new Uint32Array(this.size);
    for (let i = 0; i < hashes.length; i += 1) {
      const slot = this.find(hashes[i]!);
      offsets[i] = this.offsets[slot]!;
      lengths[i] = this.lengths[slot]!;
    }
    return { hashes, offsets, lengths };
  }

  private grow(): void {
    const { tags, offsets, lengths } = this;
    this.tags = new Float64Array(tags.length * 2);
    this.offsets = new Float64Array(tags.length * 2);
    this.lengths = new Uint32Array(tags.length * 2);
    this.size = 0;
    for (let slot = 0; slot < tags.length; slot += 1) {
      if (tags[slot] !== 0) this.set(tags[slot]! - 1, offsets[slot]!, lengths[slot]!);
    }
  }
}
