/** How the numbers of an entry are kept: whole numbers below 2^32, or any number. */
export type PackedField = 'u32' | 'f64';

/** Entries per block of the entry arrays. */
const ENTRY_BLOCK = 16_384;
/** Bytes per block of ids (an id longer than this gets a block of its own). */
const ID_BLOCK_BYTES = 256 * 1024;
/** Per entry in the u32 blocks, before its own fields: the id's block, its offset there, its length and form. */
const ID_WORDS = 3;

/**
 * Per-document entries a unit keeps until it writes them (its id list, its doc list, the
 * index entries waiting for its parts), packed: each id as Latin-1 bytes (UTF-16 code units
 * when it has a character above U+00FF) in blocks of 256 KiB, and a few numbers per entry
 * in blocks of 16,384 entries. A unit of short records has hundreds of thousands of
 * documents: as a string, an array slot and boxed numbers each, an entry costs several
 * times its id. Fixed blocks, not arrays that double: growing copies nothing, leaves no
 * dead buffer behind and wastes at most the last block.
 */
export class PackedEntries {
  private readonly u32Fields: number[] = [];
  private readonly f64Fields: number[] = [];
  /** Slot of each field in its entry: in the u32 words (after the id words) or in the f64s. */
  private readonly slots: { readonly u32: boolean; readonly at: number }[];
  private readonly u32Width: number;
  private readonly f64Width: number;
  private readonly u32Blocks: Uint32Array[] = [];
  private readonly f64Blocks: Float64Array[] = [];
  private readonly idBlocks: Uint8Array[] = [];
  private idUsed = ID_BLOCK_BYTES;
  private count = 0;

  constructor(readonly fields: readonly PackedField[]) {
    this.slots = fields.map((field, k) => {
      const list = field === 'u32' ? this.u32Fields : this.f64Fields;
      list.push(k);
      return { u32: field === 'u32', at: list.length - 1 + (field === 'u32' ? ID_WORDS : 0) };
    });
    this.u32Width = ID_WORDS + this.u32Fields.length;
    this.f64Width = this.f64Fields.length;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes of the blocks held. */
  get capacityBytes(): number {
    let bytes = 0;
    for (const blocks of [this.u32Blocks, this.f64Blocks, this.idBlocks])
      for (const block of blocks) bytes += block.byteLength;
    return bytes;
  }

  /** Appends an entry: its id and a number per field (a `u32` field takes whole numbers 0..2^32-1). Returns its index. */
  push(id: string, values: readonly number[]): number {
    const i = this.count;
    if (i % ENTRY_BLOCK === 0) {
      this.u32Blocks.push(new Uint32Array(ENTRY_BLOCK * this.u32Width));
      if (this.f64Width > 0) this.f64Blocks.push(new Float64Array(ENTRY_BLOCK * this.f64Width));
    }
    const words = this.u32Blocks[this.u32Blocks.length - 1]!;
    const at = (i % ENTRY_BLOCK) * this.u32Width;
    const [block, offset, form] = this.storeId(id);
    words[at] = block;
    words[at + 1] = offset;
    words[at + 2] = form;
    for (let k = 0; k < this.fields.length; k += 1) this.setValue(i, k, values[k] ?? Number.NaN);
    this.count = i + 1;
    return i;
  }

  id(i: number): string {
    const { bytes, start, length, wide } = this.idOf(i);
    let id = '';
    // In slices: `fromCharCode` takes its code units as arguments, and a long id would pass the argument limit.
    for (let from = 0; from < length; from += 8192) {
      const to = Math.min(length, from + 8192);
      const units = new Array<number>(to - from);
      for (let k = from; k < to; k += 1) units[k - from] = codeUnit(bytes, start, k, wide);
      id += String.fromCharCode(...units);
    }
    return id;
  }

  /** Whether entry `i`'s id is `id`, without building the entry's string. */
  idEquals(i: number, id: string): boolean {
    const { bytes, start, length, wide } = this.idOf(i);
    if (length !== id.length) return false;
    for (let k = 0; k < length; k += 1)
      if (codeUnit(bytes, start, k, wide) !== id.charCodeAt(k)) return false;
    return true;
  }

  value(i: number, k: number): number {
    const slot = this.slots[k]!;
    const entry = i % ENTRY_BLOCK;
    const block = (i - entry) / ENTRY_BLOCK;
    return slot.u32
      ? this.u32Blocks[block]![entry * this.u32Width + slot.at]!
      : this.f64Blocks[block]![entry * this.f64Width + slot.at]!;
  }

  setValue(i: number, k: number, value: number): void {
    const slot = this.slots[k]!;
    const entry = i % ENTRY_BLOCK;
    const block = (i - entry) / ENTRY_BLOCK;
    if (slot.u32) {
      if (!(Number.isInteger(value) && value >= 0 && value < 2 ** 32))
        throw new RangeError(`packed field ${k} holds whole numbers from 0 to 2^32-1, not ${value}`);
      this.u32Blocks[block]![entry * this.u32Width + slot.at] = value;
    } else this.f64Blocks[block]![entry * this.f64Width + slot.at] = value;
  }

  /**
   * Orders entries `i` and `j` by id as `compareDocIds` orders strings (UTF-8 bytes, that
   * is code points): the same comparison on the packed code units.
   */
  compareIds(i: number, j: number): number {
    // Read in place, without an object per side: a sort calls this n log n times.
    const ei = i % ENTRY_BLOCK;
    const ej = j % ENTRY_BLOCK;
    const wi = this.u32Blocks[(i - ei) / ENTRY_BLOCK]!;
    const wj = this.u32Blocks[(j - ej) / ENTRY_BLOCK]!;
    const ai = ei * this.u32Width;
    const aj = ej * this.u32Width;
    const a = this.idBlocks[wi[ai]!]!;
    const b = this.idBlocks[wj[aj]!]!;
    const aStart = wi[ai + 1]!;
    const bStart = wj[aj + 1]!;
    const aForm = wi[ai + 2]!;
    const bForm = wj[aj + 2]!;
    const aWide = (aForm & 1) === 1;
    const bWide = (bForm & 1) === 1;
    const aLength = aForm >>> 1;
    const bLength = bForm >>> 1;
    const n = Math.min(aLength, bLength);
    for (let k = 0; k < n; k += 1) {
      const x = codeUnit(a, aStart, k, aWide);
      const y = codeUnit(b, bStart, k, bWide);
      if (x === y) continue;
      if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) - codePointRank(y);
      return x - y;
    }
    return aLength - bLength;
  }

  /** Entry indexes sorted by `compare` (a stable sort: equal entries stay in the order added). */
  sortedBy(compare: (i: number, j: number) => number): Uint32Array {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < order.length; i += 1) order[i] = i;
    return order.sort(compare);
  }

  /** Writes an id into the id blocks: its block, offset and form (length * 2, plus 1 when stored as UTF-16). */
  private storeId(id: string): [number, number, number] {
    let wide = false;
    for (let k = 0; k < id.length && !wide; k += 1) wide = id.charCodeAt(k) > 0xff;
    const bytes = wide ? id.length * 2 : id.length;
    if (this.idUsed + bytes > ID_BLOCK_BYTES || this.idBlocks.length === 0) {
      this.idBlocks.push(new Uint8Array(Math.max(ID_BLOCK_BYTES, bytes)));
      this.idUsed = 0;
    }
    const block = this.idBlocks[this.idBlocks.length - 1]!;
    const offset = this.idUsed;
    for (let k = 0; k < id.length; k += 1) {
      const unit = id.charCodeAt(k);
      if (wide) {
        block[offset + 2 * k] = unit & 0xff;
        block[offset + 2 * k + 1] = unit >>> 8;
      } else block[offset + k] = unit;
    }
    this.idUsed += bytes;
    return [this.idBlocks.length - 1, offset, id.length * 2 + (wide ? 1 : 0)];
  }

  private idOf(i: number): { bytes: Uint8Array; start: number; length: number; wide: boolean } {
    const entry = i % ENTRY_BLOCK;
    const words = this.u32Blocks[(i - entry) / ENTRY_BLOCK]!;
    const at = entry * this.u32Width;
    const form = words[at + 2]!;
    return {
      bytes: this.idBlocks[words[at]!]!,
      start: words[at + 1]!,
      length: form >>> 1,
      wide: (form & 1) === 1,
    };
  }
}

const codeUnit = (bytes: Uint8Array, start: number, k: number, wide: boolean): number =>
  wide ? bytes[start + 2 * k]! | (bytes[start + 2 * k + 1]! << 8) : bytes[start + k]!;

/** Surrogates (0xD800..0xDFFF) stand for code points above 0xFFFF: rank them after 0xE000..0xFFFF (as compareDocIds). */
const codePointRank = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit + 0x2000);
