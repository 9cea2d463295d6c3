import { SluiceError } from '../errors/errors.ts';

/** A document as a doc list or manifest records it: its id and the chunks it has in `embeddings`. */
export interface DocEntry {
  readonly id: string;
  readonly chunks: number;
}

/** A unit's doc list or a source manifest cannot be read as written (missing, torn or out of order). */
export class DocListError extends SluiceError {}

/**
 * Orders doc ids by their UTF-8 bytes (code point order), the order every doc list and
 * manifest is sorted in. JavaScript's `<` compares UTF-16 code units, which puts
 * characters above U+FFFF (surrogate pairs) before U+E000..U+FFFF; this fixes that case
 * and is otherwise a plain comparison.
 */
export function compareDocIds(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) - codePointRank(y);
    return x - y;
  }
  return a.length - b.length;
}

/** Surrogates (0xD800..0xDFFF) stand for code points above 0xFFFF: rank them after 0xE000..0xFFFF. */
const codePointRank = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit + 0x2000);

/**
 * One document per line: the id as a JSON string (ids may hold tabs, newlines or any
 * other character), a tab, the chunk count.
 */
export function formatDocLine(id: string, chunks: number): string {
  return `${JSON.stringify(id)}\t${chunks}\n`;
}

/** The inverse of {@link formatDocLine}, for a line without its newline. */
export function parseDocLine(line: string): DocEntry {
  const tab = line.lastIndexOf('\t');
  const chunks = Number(line.slice(tab + 1));
  if (
    tab < 2 ||
    line.charCodeAt(0) !== 0x22 ||
    line.charCodeAt(tab - 1) !== 0x22 ||
    !Number.isInteger(chunks)
  )
    throw new DocListError(`malformed document line: ${line.slice(0, 120)}`);
  const quoted = line.slice(0, tab);
  // Most ids need no escapes: skip JSON.parse, which dominates the cost of a manifest read.
  const id = quoted.includes('\\') ? (JSON.parse(quoted) as string) : quoted.slice(1, -1);
  return { id, chunks };
}
