import {
  type EmbedPipelineConfig,
  type PipelineConfigInput,
  parseEmbedPipelineConfig,
} from '../../shared/config/pipeline-config.ts';

import type { EmbeddingRow } from '../../shared/domain/types.ts';
/** A valid embedding pipeline config with test-sized defaults, overridable per test. */
export function pipelineConfig(overrides: Partial<PipelineConfigInput> = {}): EmbedPipelineConfig {
  return parseEmbedPipelineConfig({
    name: 'docs',
    kind: 'embed',
    endpoint: { name: 'test-embed', dimension: 16 },
    ...overrides,
  });
}

export function jsonl(records: readonly unknown[]): string {
  return `${records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n')}\n`;
}

/** The i-th row of a made-up embeddings part (three chunks per document, every column set). */
export function embeddingRow(
  i: number,
  embedding: Float32Array | number[] = Float32Array.of(i, i / 2, -i),
): EmbeddingRow {
  return {
    doc_id: `d${Math.floor(i / 3)}`,
    chunk_id: `d${Math.floor(i / 3)}#${i % 3}`,
    chunk_index: i % 3,
    char_start: i,
    char_end: i + 10,
    token_count: 5 + (i % 7),
    chunk_text: `chunk ${i} text, with "quotes" and ünïcode`,
    text_sha256: `sha-${i}`,
    model: 'm',
    embedding,
    source_key: 'incoming/docs/a.jsonl',
    metadata: i % 2 ? { title: `t${i}` } : {},
  };
}
