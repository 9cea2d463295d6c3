/** What one call to the endpoint cost, for the run's stats. */
export interface CallStats {
  endpointCalls: number;
  throttled: number;
  retries: number;
}

/** An embedding model behind the TEI request/response contract. */
export interface EmbeddingEndpoint {
  /** One vector per input, in order. Throws ModelError for a request the model refuses. */
  embed(inputs: readonly string[], stats: CallStats): Promise<number[][]>;
}
