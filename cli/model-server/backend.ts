/** A model the local server can serve: hash-embed, echo, or a real model (an ONNX sentence-transformer folder). */
export interface EmbeddingBackend {
  /** One line a user reads at start-up: what this model is and what it is not. */
  readonly description: string;
  readonly model: string;
  readonly dimension: number;
  /**
   * One vector per input, in order. Synchronous backends (hash-embed, echo) return the
   * vectors; one that waits on a model runtime (onnx) returns a Promise of them.
   */
  embed(inputs: readonly string[]): Float32Array[] | Promise<Float32Array[]>;
  /** Releases what the backend holds (an onnxruntime session); whoever created it calls this after the server closed. */
  close?(): Promise<void>;
}

/** A request the backend refuses; the server answers it as the container's 4xx. */
export class BackendInputError extends Error {
  override readonly name = 'BackendInputError';
}
