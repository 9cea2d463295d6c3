import type { EmbeddingBackend } from './backend.ts';

/** 32-bit FNV-1a over UTF-16 code units: fast, deterministic, no dependencies. */
function fnv1a(text: string, seed: number): number {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const WORD = /[\p{L}\p{N}]+/gu;

/**
 * The weight-free default embedder: feature hashing of word unigrams, word bigrams and
 * character trigrams into `dimension` signed buckets, sublinear term frequency
 * (1 + ln tf), L2-normalised. Deterministic and fast, and LEXICAL, not semantic:
 * texts sharing words land close together; synonyms do not.
 */
export class HashEmbedder implements EmbeddingBackend {
  readonly model: string;
  readonly description: string;

  constructor(readonly dimension = 384) {
    this.model = `sluice-hash-embed-v1`;
    this.description = `hash-embed: weight-free feature hashing of word and character n-grams (dimension ${dimension}); lexical, not semantic — use it to test the pipeline, not to judge retrieval quality`;
  }

  embedOne(text: string): Float32Array {
    const counts = new Map<string, number>();
    const add = (feature: string) => counts.set(feature, (counts.get(feature) ?? 0) + 1);
    const words = text.toLowerCase().match(WORD) ?? [];
    for (let i = 0; i < words.length; i += 1) {
      const word = words[i]!;
      add(`w:${word}`);
      if (i > 0) add(`b:${words[i - 1]} ${word}`);
      const padded = `<${word}>`;
      for (let j = 0; j + 3 <= padded.length; j += 1) add(`c:${padded.slice(j, j + 3)}`);
    }
    const vector = new Float32Array(this.dimension);
    for (const [feature, tf] of counts) {
      const hash = fnv1a(feature, 0);
      const sign = fnv1a(feature, 0x9e3779b9) & 1 ? 1 : -1;
      vector[hash % this.dimension]! += sign * (1 + Math.log(tf));
    }
    let norm = 0;
    for (const v of vector) norm += v * v;
    norm = Math.sqrt(norm);
    if (norm > 0) for (let i = 0; i < vector.length; i += 1) vector[i]! /= norm;
    return vector;
  }

  embed(inputs: readonly string[]): Float32Array[] {
    return inputs.map((text) => this.embedOne(text));
  }
}
