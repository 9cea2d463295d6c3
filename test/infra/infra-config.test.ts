import { App } from 'aws-cdk-lib';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseEcrImageUri } from '../../infra/constructs/embedding-endpoint.ts';
import { readContext } from '../../infra/context.ts';
import { deploymentSettings, endpointSpecs } from '../../infra/deployment-settings.ts';
import {
  type EmbedPipelineConfig as PipelineConfig,
  parseEmbedPipelineConfig as parsePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import { loadDocsPipeline, TEST_TEI_IMAGE_URI } from './sluice-stack-fixture.ts';

let docs: PipelineConfig;
beforeAll(async () => {
  docs = await loadDocsPipeline();
});

const withName = (config: PipelineConfig, name: string, changes: Record<string, unknown> = {}) =>
  parsePipelineConfig({ ...config, name, ...changes });

const contextOf = (context: Record<string, unknown>) => readContext(new App({ context }).node);

describe('readContext', () => {
  it("defaults to the docs pipeline and each pipeline's own model", () => {
    expect(contextOf({ 'sluice:teiImageUri': TEST_TEI_IMAGE_URI })).toEqual({
      pipelines: ['docs'],
      teiImageUri: TEST_TEI_IMAGE_URI,
      embeddingInstanceType: undefined,
      hfModelId: undefined,
      stackName: 'Sluice',
    });
  });

  it('accepts pipelines as a list, a JSON string (-c) or a comma-separated string', () => {
    for (const pipelines of [['docs', 'notes'], '["docs","notes"]', 'docs, notes']) {
      expect(
        contextOf({ 'sluice:teiImageUri': TEST_TEI_IMAGE_URI, 'sluice:pipelines': pipelines }).pipelines,
      ).toEqual(['docs', 'notes']);
    }
  });

  it('refuses a missing TEI image, a bad instance type and a repeated pipeline with one line naming the key', () => {
    expect(() => contextOf({})).toThrow(/sluice:teiImageUri is required/);
    expect(() =>
      contextOf({ 'sluice:teiImageUri': TEST_TEI_IMAGE_URI, 'sluice:embeddingInstanceType': 'g5.xlarge' }),
    ).toThrow(/sluice:embeddingInstanceType "g5.xlarge"/);
    expect(() =>
      contextOf({ 'sluice:teiImageUri': TEST_TEI_IMAGE_URI, 'sluice:pipelines': 'docs,docs' }),
    ).toThrow(/names a pipeline twice/);
  });
});

describe('deploymentSettings', () => {
  it('takes the largest worker settings over all pipelines', () => {
    const big = withName(docs, 'big', {
      workers: { maxConcurrency: 50, timeoutSeconds: 120, memoryMiB: 512, maxReceiveCount: 9 },
    });
    expect(deploymentSettings([docs, big])).toEqual({
      workTimeoutSeconds: docs.workers.timeoutSeconds,
      workMemoryMiB: docs.workers.memoryMiB,
      workMaxConcurrency: 50,
      maxReceiveCount: 9,
    });
  });

  it('refuses to deploy no pipeline', () => {
    expect(() => deploymentSettings([])).toThrow(/at least one pipeline/);
  });
});

describe('endpointSpecs', () => {
  it('refuses pipelines that share an endpoint but disagree on its instance type', () => {
    const other = withName(docs, 'other', { endpoint: { ...docs.endpoint, instanceType: 'ml.g5.2xlarge' } });
    expect(() => endpointSpecs([docs, other])).toThrow(/share endpoint sluice-docs-embed/);
    expect(endpointSpecs([docs, other], 'ml.g6.xlarge')).toEqual([
      expect.objectContaining({ instanceType: 'ml.g6.xlarge', pipelines: ['docs', 'other'] }),
    ]);
  });

  it('gives pipelines with different endpoint names their own endpoint', () => {
    const other = withName(docs, 'other', { endpoint: { ...docs.endpoint, name: 'sluice-other-embed' } });
    expect(endpointSpecs([docs, other]).map((s) => s.endpointName)).toEqual([
      'sluice-docs-embed',
      'sluice-other-embed',
    ]);
  });
});

describe('parseEcrImageUri', () => {
  it('finds the registry account, region and repository of an ECR image', () => {
    expect(parseEcrImageUri(TEST_TEI_IMAGE_URI)).toEqual({
      account: '763104351884',
      region: 'us-east-1',
      repository: 'huggingface-pytorch-tei',
    });
    expect(
      parseEcrImageUri(`123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/tei@sha256:${'a'.repeat(64)}`),
    ).toEqual({ account: '123456789012', region: 'eu-west-1', repository: 'team/tei' });
  });

  it('refuses images outside ECR, which SageMaker cannot pull', () => {
    expect(() => parseEcrImageUri('ghcr.io/huggingface/text-embeddings-inference:1.5')).toThrow(
      /is not an ECR image URI/,
    );
  });
});
