import { ObjectRangeError } from '../../errors/errors.ts';

/**
 * Refuses a range that reaches past the end of an object of `size` bytes: a start past
 * the end (or at it, unless the object is empty and the read is from 0), or an end past
 * it. Such a read used to come back short or empty, which a reader cannot tell from an
 * object that simply has no more records.
 */
export function assertRangeWithin(key: string, size: number, start: number, end?: number): void {
  if (end !== undefined && end <= start) return;
  const startsPast = start > size || (start === size && !(start === 0 && end === undefined));
  if (startsPast || (end !== undefined && end > size)) {
    throw new ObjectRangeError(
      `${key}: bytes [${start}, ${end ?? 'end'}) reach past the end of the object (${size} bytes)`,
    );
  }
}
