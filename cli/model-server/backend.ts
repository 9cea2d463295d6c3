/** A model the local server can serve. Real models (ONNX from a local folder) plug in here. */
export interface EmbeddingBackend {
  /** One line a user reads at start-up: what this model is and what it is not. */
  readonly description: string;
  readonly model: string;
  readonly dimension: number;
  embed(inputs: readonly string[]): Float32Array[];
}

/** A request the backend refuses; the server answers it as the container's 4xx. */
export class BackendInputError extends Error {
  override readonly name = 'BackendInputError';
}
