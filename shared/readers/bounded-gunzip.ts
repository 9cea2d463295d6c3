import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * Decompressed bytes a gzip stream may produce before its ratio is checked: small files
 * of very repetitive text stay readable whatever their ratio.
 */
export const DECOMPRESSION_GRACE_BYTES = 1024 * 1024;

/** @default `input.maxDecompressionRatio`'s default */
export const DEFAULT_MAX_DECOMPRESSION_RATIO = 100;

/**
 * A gzip stream expanded more than `input.maxDecompressionRatio` times: a decompression
 * bomb, read no further. Readers report it as they report a corrupt stream: the records
 * before it are kept, and one reject stands for the rest.
 */
export class DecompressionRatioExceeded extends Error {
  readonly code = 'SLUICE_GZIP_RATIO';

  constructor(
    readonly maxRatio: number,
    readonly decompressedBytes: number,
    readonly compressedBytes: number,
  ) {
    super(
      `gzip data expands more than ${maxRatio} times (${decompressedBytes} bytes from ${compressedBytes}): read no further (input.maxDecompressionRatio)`,
    );
    this.name = 'DecompressionRatioExceeded';
  }
}

/**
 * Decompresses a gzip byte stream chunk by chunk (zlib's 16 KiB output chunks: nothing is
 * held whole), refusing to go on once more than {@link DECOMPRESSION_GRACE_BYTES} came
 * out at more than `maxRatio` bytes per compressed byte consumed. Compressed bytes are
 * counted as zlib consumes them (`bytesWritten`), not as they are read ahead. A corrupt
 * stream fails with zlib's own error, as before.
 */
export async function* gunzipBounded(
  compressed: AsyncIterable<Uint8Array>,
  maxRatio: number,
): AsyncGenerator<Buffer> {
  const gunzip = createGunzip();
  // pipeline (not pipe), so that a failed read also fails the decompressed stream.
  const out = pipeline(Readable.from(compressed), gunzip, () => {});
  let decompressed = 0;
  for await (const data of out) {
    const chunk = data as Buffer;
    decompressed += chunk.length;
    if (decompressed > DECOMPRESSION_GRACE_BYTES && decompressed > maxRatio * gunzip.bytesWritten) {
      throw new DecompressionRatioExceeded(maxRatio, decompressed, gunzip.bytesWritten);
    }
    yield chunk;
  }
}
