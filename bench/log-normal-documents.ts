import { seededRandom } from '../events/generate-samples.ts';

/** The vocabulary of the batching benchmarks: short and long words, so token counts vary. */
export const BENCH_WORDS = [
  'queue',
  'bucket',
  'embedding',
  'token',
  'partition',
  'throughput',
  'a',
  'the',
  'of',
  'latency',
] as const;

/**
 * Seeded documents whose word counts are log-normal (`exp(mu + sigma * N(0, 1))`, at
 * least 3), words drawn uniformly from `words`: the length mix real corpora have, the
 * same sequence for the same seed.
 */
export function* logNormalDocuments(options: {
  readonly documents: number;
  readonly seed: number;
  readonly mu: number;
  readonly sigma: number;
  readonly words?: readonly string[];
}): Generator<string> {
  const { documents, mu, sigma, words = BENCH_WORDS } = options;
  const rand = seededRandom(options.seed);
  for (let d = 0; d < documents; d += 1) {
    const gaussian = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const length = Math.max(3, Math.round(Math.exp(mu + sigma * gaussian)));
    yield Array.from({ length }, () => words[Math.floor(rand() * words.length)]).join(' ');
  }
}
