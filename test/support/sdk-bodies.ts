import { Readable } from 'node:stream';

/**
 * What the SDK hands back as a streaming `Body` in Node: a Readable with the `transformTo*`
 * helpers (SdkStreamMixin). Built here so mocked responses need no private smithy import.
 */
export function streamingBody(...chunks: (string | Uint8Array)[]) {
  const bytes = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c))));
  const stream = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c))));
  return Object.assign(stream, {
    transformToByteArray: async () => new Uint8Array(bytes),
    transformToString: async (encoding?: BufferEncoding) => bytes.toString(encoding),
    transformToWebStream: () => {
      throw new Error('not used by the adapters');
    },
  });
}

/** A blob body (InvokeEndpoint's `Body`): bytes with `transformToString`. */
export function blobBody(text: string) {
  return Object.assign(new TextEncoder().encode(text), {
    transformToString: (encoding?: BufferEncoding) => Buffer.from(text).toString(encoding),
  });
}
