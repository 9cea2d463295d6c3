import type { EmbeddingBackend } from './backend.ts';

/**
 * Not a model: one cheap deterministic vector per input, `[length / 1000, 1, 0, ...]`.
 * It costs the server almost nothing, so a benchmark measures the pipeline (reading,
 * chunking, batching, HTTP, Parquet) or the endpoint client, not the embedder.
 */
export class EchoBackend implements EmbeddingBackend {
  readonly model = 'sluice-echo-v1';
  readonly description: string;

  constructor(readonly dimension = 384) {
    if (!Number.isInteger(dimension) || dimension < 2)
      throw new RangeError(`echo backend: dimension must be an integer of at least 2, got ${dimension}`);
    this.description = `echo: not a model; returns [length/1000, 1, 0, ...] (dimension ${dimension}) per input, for overhead and throughput benchmarks`;
  }

  embed(inputs: readonly string[]): Float32Array[] {
    return inputs.map((text) => {
      const vector = new Float32Array(this.dimension);
      vector[0] = text.length / 1000;
      vector[1] = 1;
      return vector;
    });
  }
}
