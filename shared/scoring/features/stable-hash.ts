const encoder = new TextEncoder();

/**
 * MurmurHash3 (x86, 32-bit) of the UTF-8 bytes of `text`: the hash of the hashing trick.
 * It is the hash scikit-learn's FeatureHasher and Spark's HashingTF use, it is fixed by
 * its published definition (so buckets never move between releases, machines or
 * languages), and it mixes short keys well. Returns an unsigned 32-bit integer.
 */
export function murmur3(text: string, seed = 0): number {
  const bytes = encoder.encode(text);
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const whole = bytes.length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // The 1-3 trailing bytes, mixed like a block without the rotate-and-add of h.
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[whole + 2]! << 16;
    if (tail >= 2) k ^= bytes[whole + 1]! << 8;
    k ^= bytes[whole]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The bucket (and sign) of a category under the hashing trick. The bucket is the hash
 * modulo `buckets`; the sign comes from the top bit, which the modulo of a small bucket
 * count hardly depends on.
 */
export function hashBucket(category: string, buckets: number, seed = 0): { bucket: number; sign: 1 | -1 } {
  const h = murmur3(category, seed);
  return { bucket: h % buckets, sign: h & 0x80000000 ? -1 : 1 };
}
