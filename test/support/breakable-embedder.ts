import type { EmbeddingBackend } from '../../cli/model-server/backend.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';

export interface BreakableEmbedderOptions {
  /** Whether it starts broken. @default false */
  readonly broken?: boolean;
  /** Which calls fail while broken. @default every call */
  readonly fails?: (inputs: readonly string[]) => boolean;
  /** What a failed call throws. @default 'GPU fell over' */
  readonly message?: string;
}

/**
 * The hash embedder, except that while `broken` the calls `fails` picks throw, which the
 * local model server answers as a container 500 (SageMaker's 424 ModelError on its runtime route).
 */
export class BreakableEmbedder implements EmbeddingBackend {
  broken: boolean;
  private readonly inner: HashEmbedder;
  private readonly fails: (inputs: readonly string[]) => boolean;
  private readonly message: string;
  readonly description = 'hash embedder that fails calls while broken';
  readonly model: string;
  readonly dimension: number;

  constructor(dimension: number, options: BreakableEmbedderOptions = {}) {
    this.inner = new HashEmbedder(dimension);
    this.model = this.inner.model;
    this.dimension = dimension;
    this.broken = options.broken ?? false;
    this.fails = options.fails ?? (() => true);
    this.message = options.message ?? 'GPU fell over';
  }

  embed(inputs: readonly string[]): Float32Array[] {
    if (this.broken && this.fails(inputs)) throw new Error(this.message);
    return this.inner.embed(inputs);
  }
}
