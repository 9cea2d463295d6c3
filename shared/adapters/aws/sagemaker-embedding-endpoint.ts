import { EndpointUnavailable, ModelError } from '../../errors/errors.ts';
import type { CallStats, EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import { SageMakerInvoker, type SageMakerInvokerOptions } from './sagemaker-invoker.ts';

export type SageMakerEmbeddingEndpointOptions = SageMakerInvokerOptions;

/**
 * (secondary adapter) EmbeddingEndpoint over a SageMaker real-time endpoint serving the
 * TEI contract: `{"inputs": [...], "truncate": true}` -> `number[][]`, with the retry and
 * adaptive-concurrency rules of {@link SageMakerInvoker}. A batch whose JSON would pass
 * SageMaker's 6 MB payload limit is split in halves, sent as separate requests, and its
 * vectors joined in order.
 */
export class SageMakerEmbeddingEndpoint implements EmbeddingEndpoint {
  private readonly invoker: SageMakerInvoker;

  constructor(options: SageMakerEmbeddingEndpointOptions) {
    this.invoker = new SageMakerInvoker(options);
  }

  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    if (inputs.length === 0) return [];
    const body = JSON.stringify({ inputs, truncate: true });
    const bytes = Buffer.byteLength(body);
    const { maxPayloadBytes, endpointName } = this.invoker;
    if (bytes <= maxPayloadBytes) {
      // What the endpoint computes grows with the padded batch: longest input x count.
      const cost = inputs.reduce((longest, text) => Math.max(longest, text.length), 1) * inputs.length;
      return this.invoker.invoke(
        {
          body,
          contentType: 'application/json',
          accept: 'application/json',
          cost,
          parse: (response) => parseEmbeddings(response, inputs.length),
        },
        stats,
      );
    }
    if (inputs.length === 1) {
      throw new ModelError(
        `endpoint ${endpointName}: one input makes a ${bytes}-byte request, over the ${maxPayloadBytes}-byte payload limit`,
        413,
      );
    }
    const half = Math.ceil(inputs.length / 2);
    const [head, tail] = await Promise.all([
      this.embed(inputs.slice(0, half), stats),
      this.embed(inputs.slice(half), stats),
    ]);
    return [...head, ...tail];
  }
}

/** Parses the TEI response: one vector per input, all of one dimension, all finite numbers. */
function parseEmbeddings(body: Uint8Array | undefined, expected: number): number[][] {
  if (body === undefined) throw new EndpointUnavailable('endpoint returned an empty body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new EndpointUnavailable('endpoint returned a body that is not JSON', { cause: error });
  }
  if (!Array.isArray(parsed) || parsed.length !== expected) {
    const got = Array.isArray(parsed) ? `${parsed.length} vectors` : typeof parsed;
    throw new EndpointUnavailable(`endpoint returned ${got} for ${expected} inputs`);
  }
  const dimension = Array.isArray(parsed[0]) ? parsed[0].length : -1;
  for (const vector of parsed) {
    if (!Array.isArray(vector) || vector.length !== dimension || dimension === 0 || !allFinite(vector)) {
      throw new EndpointUnavailable(
        `endpoint returned vectors that are not ${dimension}-dimensional numbers`,
      );
    }
  }
  return parsed as number[][];
}

/** Every element a finite number; a plain loop, as this runs over every value of every vector. */
function allFinite(vector: readonly unknown[]): boolean {
  for (let i = 0; i < vector.length; i++) {
    const x = vector[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) return false;
  }
  return true;
}
