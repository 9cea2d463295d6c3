/**
 * FNV-1a (32-bit) over the UTF-8 bytes of `parts` joined by a 0 byte: a stable hash that
 * any implementation can reproduce (scripts/peers/user-cf.py does), for the hot-item
 * sample and the holdout order without timestamps.
 */
export function stableHash(...parts: readonly string[]): number {
  let hash = 0x811c9dc5;
  const byte = (b: number) => {
    hash ^= b;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  };
  parts.forEach((part, index) => {
    if (index > 0) byte(0);
    for (const char of part) {
      const code = char.codePointAt(0)!;
      if (code < 0x80) byte(code);
      else if (code < 0x800) {
        byte(0xc0 | (code >> 6));
        byte(0x80 | (code & 0x3f));
      } else if (code < 0x10000) {
        byte(0xe0 | (code >> 12));
        byte(0x80 | ((code >> 6) & 0x3f));
        byte(0x80 | (code & 0x3f));
      } else {
        byte(0xf0 | (code >> 18));
        byte(0x80 | ((code >> 12) & 0x3f));
        byte(0x80 | ((code >> 6) & 0x3f));
        byte(0x80 | (code & 0x3f));
      }
    }
  });
  return hash >>> 0;
}
