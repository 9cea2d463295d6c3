import { createHash } from 'node:crypto';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';

export const DAY_MS = 86_400_000;
/** Day 0 of the runs these tests date. */
export const T0 = Date.parse('2026-11-02T01:00:00Z');

/** Run `n`'s id: started `n` days after day 0, so the chunk index's entries age with `n`. */
export const dailyRunId = (n: number): string =>
  `r-${new Date(T0 + n * DAY_MS).toISOString().replace(/[-:]|\.\d{3}/g, '')}-00000${n}`;

/** A vector that is a function of the text alone, the same every time: a wrong one is seen. */
export function hashVector(text: string, dimension: number): number[] {
  const digest = createHash('sha256').update(text).digest();
  return Array.from({ length: dimension }, (_, d) => digest[d]! - 128);
}

/** The model of these tests: {@link hashVector}, counting what it embeds (chunks, and their texts). */
export class HashModel implements EmbeddingEndpoint {
  chunks = 0;
  readonly texts: string[] = [];
  constructor(private readonly dimension: number) {}
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    stats.endpointCalls += 1;
    this.chunks += inputs.length;
    this.texts.push(...inputs);
    return inputs.map((text) => hashVector(text, this.dimension));
  }
}

/** A run store whose completeUnit fails once: the delivery dies after its part and entries are written. */
export function crashingOnce(runs: RunStore): RunStore {
  let crash = true;
  return new Proxy(runs, {
    get(target, prop, receiver) {
      if (prop === 'completeUnit' && crash)
        return async () => {
          crash = false;
          throw new Error('worker killed before completing');
        };
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
