import { endianness } from 'node:os';
import { ByteWriter, type ParquetWriter } from 'hyparquet-writer';
import { writeColumn } from 'hyparquet-writer/src/column.js';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { encodeNestedValues } from 'hyparquet-writer/src/dremel.js';
import { schemaPathResolver } from 'hyparquet-writer/src/schema.js';

/**
 * A specialised encoder for a list<float> column (the three-level LIST layout: a required
 * group, a repeated `list`, a required FLOAT `element`), written from Float32Arrays without
 * hyparquet-writer's generic path, which shreds every element through Dremel `visit`,
 * chooses pages value by value and writes each float through a DataView.
 *
 * With one repeated and no optional level, max repetition and definition levels are both 1:
 * a row of n > 0 floats has repetition levels 0 then n-1 ones and n definition levels 1; an
 * empty row has one slot with repetition level 0 and definition level 0 (and counts as a
 * null in the page header, as the generic writer counts it). The levels are written as RLE
 * runs of whole rows, the values as PLAIN floats copied from the arrays' bytes.
 */

type ColumnEncoder = Parameters<typeof writeColumn>[0]['column'];
type ColumnResult = ReturnType<typeof writeColumn>;
type Writer = ParquetWriter['writer'];
// From hyparquet-writer's signatures: it brings its own hyparquet, whose types may differ from ours.
type ColumnChunk = ColumnResult['chunk'];
type OffsetIndex = NonNullable<ColumnResult['offsetIndex']>;
type PageLocation = OffsetIndex['page_locations'][number];
type Encoding = NonNullable<ColumnEncoder['encoding']>;

/** One row of a list<float> column: null is rejected, the column being required. */
export type FloatList = ArrayLike<number>;

/** hyparquet-writer's default, about 1 MiB of values per page. */
export const DEFAULT_PAGE_SIZE = 1 << 20;

const LITTLE_ENDIAN = endianness() === 'LE';

/** RLE runs (bit width 1) of the RLE/bit-packed hybrid encoding, adjacent equal runs merged. */
class LevelRuns {
  readonly bytes = new ByteWriter(256);
  private value = 0;
  private count = 0;

  push(value: 0 | 1, count: number): void {
    if (count === 0) return;
    if (value !== this.value) this.flush();
    this.value = value;
    this.count += count;
  }

  /** Writes the pending run; returns the bytes written so far. */
  finish(): Uint8Array {
    this.flush();
    return this.bytes.getBytes();
  }

  private flush(): void {
    if (this.count === 0) return;
    this.bytes.appendVarInt(this.count * 2); // run header: count << 1, low bit 0 for RLE
    this.bytes.appendUint8(this.value); // the value in ceil(bitWidth / 8) = 1 byte
    this.count = 0;
  }
}

export interface FloatListColumnOptions {
  /** Path of the leaf, e.g. ['embedding', 'list', 'element']. */
  readonly path: readonly string[];
  readonly codec: ParquetWriter['codec'];
  readonly compressors: ParquetWriter['compressors'];
  /** Target uncompressed bytes of values per page; pages split between rows. */
  readonly pageSize?: number;
  /** Column name for error messages. */
  readonly name?: string;
}

/**
 * Writes one column chunk of a list<float> column: DATA_PAGE_V2 pages of whole rows, PLAIN
 * values, no dictionary or statistics. Returns what hyparquet-writer's `writeColumn` does, for
 * the row group and `ParquetWriter.pendingIndexes` (an offset index when there are several pages).
 */
export function writeFloatListColumn(
  writer: Writer,
  rows: readonly (FloatList | null | undefined)[],
  options: FloatListColumnOptions,
): ColumnResult {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const compress = compressorOf(options);
  const chunk = new FloatListChunk(writer, compress);
  for (let start = 0; start < rows.length; ) {
    const { end, values } = pageRows(rows, start, pageSize, options.name ?? options.path[0]);
    chunk.writePage(encodePage(rows, start, end, values), start);
    start = end;
  }
  return chunk.finish(options);
}

type Compress = (input: Uint8Array) => Uint8Array;

/** The codec's compressor; undefined for UNCOMPRESSED. */
function compressorOf(options: FloatListColumnOptions): Compress | undefined {
  if (options.codec === 'UNCOMPRESSED') return undefined;
  const compress = options.compressors[options.codec];
  if (!compress) throw new Error(`parquet no compressor for codec ${options.codec}`);
  return compress;
}

/**
 * The rows of the page starting at row `start`: whole rows up to `pageSize` bytes of values,
 * at least one row. Returns the end (exclusive) and the number of floats.
 * @throws Error naming the row when a row is null or undefined (the column is required)
 */
export function pageRows(
  rows: readonly (FloatList | null | undefined)[],
  start: number,
  pageSize: number,
  name: string | undefined,
): { end: number; values: number } {
  let end = start;
  let values = 0;
  while (end < rows.length) {
    const row = rows[end];
    if (row === null || row === undefined)
      throw new Error(`parquet list column ${name} is required: row ${end} is ${row}`);
    if (end > start && (values + row.length) * 4 > pageSize) break;
    values += row.length;
    end++;
  }
  return { end, values };
}

/** One data page before compression: its levels, its PLAIN values, and what its header counts. */
export interface EncodedPage {
  readonly repetition: Uint8Array;
  readonly definition: Uint8Array;
  /** The floats, little-endian. */
  readonly data: Uint8Array;
  readonly rows: number;
  /** Level slots: one per float, one per empty row. */
  readonly slots: number;
  /** Empty rows (a slot at definition level 0). */
  readonly nulls: number;
}

/**
 * Encodes rows `start` to `end` (holding `values` floats) as one page. `littleEndian` is this
 * machine's byte order: there a Float32Array into a Float32Array is a byte copy (NaN payloads
 * included); elsewhere each float is written little-endian through a DataView.
 */
export function encodePage(
  rows: readonly (FloatList | null | undefined)[],
  start: number,
  end: number,
  values: number,
  littleEndian = LITTLE_ENDIAN,
): EncodedPage {
  const repetition = new LevelRuns();
  const definition = new LevelRuns();
  const data = new Uint8Array(values * 4);
  const floats = littleEndian ? new Float32Array(data.buffer) : undefined;
  const view = new DataView(data.buffer);
  let nulls = 0;
  let at = 0;
  for (let r = start; r < end; r++) {
    const row = rows[r] as FloatList;
    const n = row.length;
    repetition.push(0, 1);
    if (n === 0) {
      definition.push(0, 1);
      nulls++;
      continue;
    }
    repetition.push(1, n - 1);
    definition.push(1, n);
    if (floats) floats.set(row, at);
    else for (let i = 0; i < n; i++) view.setFloat32((at + i) * 4, row[i] as number, true);
    at += n;
  }
  return {
    repetition: repetition.finish(),
    definition: definition.finish(),
    data,
    rows: end - start,
    slots: values + nulls,
    nulls,
  };
}

/** The pages of one column chunk as they are written, and the chunk's metadata at the end. */
class FloatListChunk {
  private readonly offsetStart: number;
  private readonly pageLocations: PageLocation[] = [];
  private uncompressedSize = 0;
  private levelCount = 0;

  constructor(
    private readonly writer: Writer,
    private readonly compress: Compress | undefined,
  ) {
    this.offsetStart = writer.offset;
  }

  /** Appends one DATA_PAGE_V2 whose first row is row `firstRow` of the chunk. */
  writePage(page: EncodedPage, firstRow: number): void {
    const { writer, compress } = this;
    const levelBytes = page.repetition.length + page.definition.length;
    const compressed = compress ? compress(page.data) : page.data;
    const pageOffset = writer.offset;
    writePageHeader(writer, {
      type: 'DATA_PAGE_V2',
      uncompressed_page_size: levelBytes + page.data.length,
      compressed_page_size: levelBytes + compressed.length,
      data_page_header_v2: {
        num_values: page.slots,
        num_nulls: page.nulls,
        num_rows: page.rows,
        encoding: 'PLAIN',
        definition_levels_byte_length: page.definition.length,
        repetition_levels_byte_length: page.repetition.length,
        is_compressed: compress !== undefined,
      },
    });
    const headerSize = writer.offset - pageOffset;
    // Levels are never compressed in a V2 page: repetition first, then definition.
    writer.appendBytes(page.repetition);
    writer.appendBytes(page.definition);
    writer.appendBytes(compressed);
    this.levelCount += page.slots;
    this.uncompressedSize += headerSize + levelBytes + page.data.length;
    this.pageLocations.push({
      offset: BigInt(pageOffset),
      compressed_page_size: writer.offset - pageOffset,
      first_row_index: BigInt(firstRow),
    });
  }

  /** The chunk's metadata, and an offset index when it has several pages. */
  finish(options: FloatListColumnOptions): ColumnResult {
    const encodings: Encoding[] = ['PLAIN', 'RLE'];
    const chunk: ColumnChunk = {
      meta_data: {
        type: 'FLOAT',
        encodings,
        path_in_schema: [...options.path],
        codec: options.codec,
        num_values: BigInt(this.levelCount),
        total_compressed_size: BigInt(this.writer.offset - this.offsetStart),
        total_uncompressed_size: BigInt(this.uncompressedSize),
        data_page_offset: BigInt(this.offsetStart),
      },
      file_offset: BigInt(this.offsetStart),
    };
    const offsetIndex: OffsetIndex | undefined =
      this.pageLocations.length > 1 ? { page_locations: this.pageLocations } : undefined;
    return { chunk, offsetIndex };
  }
}

/** A column of one row group: list<float> rows for the encoder above, or anything else for the generic path. */
export type GroupColumn =
  | { readonly name: string; readonly floatLists: readonly (FloatList | null | undefined)[] }
  | {
      readonly name: string;
      readonly data: unknown[];
      readonly encoding?: Encoding;
      readonly statistics?: boolean;
    };

/**
 * Writes one row group to `parquet`, as `ParquetWriter.write` does for a single group:
 * flat columns through hyparquet-writer's `writeColumn`, list<float> columns through
 * `writeFloatListColumn`. Synchronous: the writer must not need a flush between groups.
 */
export function writeRowGroup(
  parquet: ParquetWriter,
  columns: readonly GroupColumn[],
  numRows: number,
  pageSize = DEFAULT_PAGE_SIZE,
): void {
  const writer = parquet.writer;
  const resolve = schemaPathResolver(parquet.schema);
  const groupStart = writer.offset;
  const chunks: ColumnChunk[] = [];
  for (const col of columns) {
    const tree = resolve([col.name]);
    const rows = 'floatLists' in col ? col.floatLists.length : col.data.length;
    if (rows !== numRows) throw new Error('parquet columns must have the same length');
    const result =
      'floatLists' in col
        ? writeFloatListColumn(writer, col.floatLists, {
            path: floatListPath(tree, col.name),
            codec: parquet.codec,
            compressors: parquet.compressors,
            pageSize,
            name: col.name,
          })
        : writeFlatColumn(parquet, tree, col, pageSize);
    chunks.push(result.chunk);
    parquet.pendingIndexes.push(result);
  }
  let total_byte_size = 0n;
  for (const { meta_data } of chunks) total_byte_size += meta_data?.total_uncompressed_size ?? 0n;
  parquet.num_rows += BigInt(numRows);
  parquet.row_groups.push({
    columns: chunks,
    total_byte_size,
    num_rows: BigInt(numRows),
    total_compressed_size: BigInt(writer.offset - groupStart),
  });
}

type SchemaTree = ReturnType<ReturnType<typeof schemaPathResolver>>;
type FlatColumn = Extract<GroupColumn, { readonly data: unknown[] }>;

/**
 * The leaf path of a list<float> column (`[name, 'list', 'element']`), after checking the
 * layout the encoder's levels hold for: required group (LIST) > repeated group > required FLOAT.
 */
function floatListPath(tree: SchemaTree, name: string): string[] {
  const group = tree.at(-1);
  const list = group?.children[0];
  const leaf = list?.children[0];
  if (
    tree.length !== 2 ||
    group?.element.repetition_type !== 'REQUIRED' ||
    group.children.length !== 1 ||
    list?.element.repetition_type !== 'REPEATED' ||
    list.children.length !== 1 ||
    leaf?.element.type !== 'FLOAT' ||
    leaf.element.repetition_type !== 'REQUIRED' ||
    leaf.children.length
  ) {
    throw new Error(`parquet column ${name} is not a required three-level list<float>`);
  }
  return [group.element.name, list.element.name, leaf.element.name];
}

/** A flat column through hyparquet-writer's generic `writeColumn`, with the writer's settings. */
function writeFlatColumn(
  parquet: ParquetWriter,
  tree: SchemaTree,
  col: FlatColumn,
  pageSize: number,
): ColumnResult {
  const schemaPath = tree.map((node) => node.element);
  const element = schemaPath.at(-1);
  if (!element || tree.at(-1)?.children.length) throw new Error(`parquet column ${col.name} is not flat`);
  const column: ColumnEncoder = {
    columnName: col.name,
    element,
    schemaPath,
    codec: parquet.codec,
    compressors: parquet.compressors,
    stats: col.statistics ?? parquet.statistics,
    statisticsTruncateLength: parquet.statisticsTruncateLength,
    pageSize,
    columnIndex: false,
    offsetIndex: true,
    encoding: col.encoding,
  };
  return writeColumn({
    writer: parquet.writer,
    column,
    pageData: encodeNestedValues(tree, col.data as never),
  });
}
