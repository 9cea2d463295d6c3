import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import {
  asEmbedPipeline,
  parseEmbedPipelineConfig,
  parsePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';

const docs = JSON.parse(readFileSync('pipelines/docs.json', 'utf8'));

describe('pipeline config', () => {
  it('accepts pipelines/docs.json and fills defaults for a minimal config', async () => {
    expect(asEmbedPipeline(await loadPipelineConfig('pipelines', 'docs')).endpoint.name).toBe(
      'sluice-docs-embed',
    );
    const minimal = parseEmbedPipelineConfig({ name: 'x', kind: 'embed', endpoint: { name: 'e' } });
    expect(minimal.batching).toEqual({ maxBatchTokens: 16384, maxBatchSize: 32, sortWindow: 2048 });
    expect(minimal.endpoint.dimension).toBe(384);
  });

  it.each([
    [{ ...docs, chunking: { ...docs.chunking, maxTokenz: 3 } }, 'chunking.maxTokenz: unknown key'],
    [{ ...docs, extra: true }, 'extra: unknown key'],
    [
      { ...docs, batching: { ...docs.batching, maxBatchSize: '32' } },
      'batching.maxBatchSize: Invalid input: expected number, received string',
    ],
    [
      { ...docs, chunking: { maxTokens: 64, overlapTokens: 64 } },
      'chunking.overlapTokens: overlapTokens must be smaller than maxTokens',
    ],
    [{ ...docs, kind: 'score' }, 'model: '], // featureSpec is inferred when left out (issue 16, item 2)
    [{ ...docs, kind: 'nope' }, 'kind: '],
    [
      { ...docs, chunking: { maxTokens: 1024, overlapTokens: 32 } },
      'chunking.maxTokens: must not exceed endpoint.maxInputTokens',
    ],
    [
      { ...docs, schedule: { expression: 'every day', prefix: 'x/' } },
      'schedule.expression: must be cron(...) or rate(...)',
    ],
  ])('fails with one line naming the key (%#)', (raw, expected) => {
    let message = '';
    try {
      parsePipelineConfig(raw, 'pipelines/docs.json');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain(`pipelines/docs.json: ${expected}`);
    expect(message).not.toContain('\n');
  });

  it('names the known pipelines when one is missing', async () => {
    await expect(loadPipelineConfig('pipelines', 'nope')).rejects.toThrow(
      /pipeline "nope" not found: .*\(known: credit-risk, docs, generate-triage, recommend\)/,
    );
  });
});
