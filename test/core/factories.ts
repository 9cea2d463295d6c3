import {
  type EmbedPipelineConfig,
  type PipelineConfigInput,
  parseEmbedPipelineConfig,
} from '../../shared/config/pipeline-config.ts';

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
