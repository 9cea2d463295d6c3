import { App } from 'aws-cdk-lib';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseEcrImageUri } from '../../infra/constructs/endpoint-execution-role.ts';
import { readContext } from '../../infra/context.ts';
import {
  checkEndpointNames,
  deploymentSettings,
  endpointSpecs,
  modelDataKeyOf,
  scoringEndpointSpecs,
} from '../../infra/deployment-settings.ts';
import {
  type EmbedPipelineConfig as PipelineConfig,
  parsePipelineConfig as parseAnyPipelineConfig,
  parseEmbedPipelineConfig as parsePipelineConfig,
  type ScorePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import { loadCreditRiskPipeline, loadDocsPipeline, TEST_TEI_IMAGE_URI } from './sluice-stack-fixture.ts';

let docs: PipelineConfig;
let creditRisk: ScorePipelineConfig;
beforeAll(async () => {
  docs = await loadDocsPipeline();
  creditRisk = await loadCreditRiskPipeline();
});

/** credit-risk under another name, with `changes` laid over it (`model` merged). */
const scoreVariant = (name: string, changes: Record<string, unknown> = {}): ScorePipelineConfig => {
  const config = parseAnyPipelineConfig({
    ...creditRisk,
    name,
    ...changes,
    model: { ...creditRisk.model, ...(changes.model as object | undefined) },
  });
  if (config.kind !== 'score') throw new Error('not a score pipeline');
  return config;
};

const withName = (config: PipelineConfig, name: string, changes: Record<string, unknown> = {}) =>
  parsePipelineConfig({ ...config, name, ...changes });

const contextOf = (context: Record<string, unknown>) => readContext(new App({ context }).node);

describe('readContext', () => {
  it("defaults to the docs and credit-risk pipelines, each pipeline's own model and the table's images", () => {
    expect(contextOf({})).toEqual({
      pipelines: ['docs', 'credit-risk'],
      teiVersion: undefined,
      teiImageUri: undefined,
      embeddingInstanceType: undefined,
      hfModelId: undefined,
      xgboostVersion: undefined,
      xgboostImageUri: undefined,
      stackName: 'Sluice',
    });
  });

  it('reads image versions and explicit image URIs', () => {
    const context = contextOf({
      'sluice:teiVersion': '1.9',
      'sluice:teiImageUri': TEST_TEI_IMAGE_URI,
      'sluice:xgboostVersion': '2.1-0',
      'sluice:tgiVersion': '3.1',
    });
    expect(context).toMatchObject({
      teiVersion: '1.9',
      teiImageUri: TEST_TEI_IMAGE_URI,
      xgboostVersion: '2.1-0',
      xgboostImageUri: undefined,
      tgiVersion: '3.1',
      tgiImageUri: undefined,
    });
  });

  it('refuses sluice:scoringEndpoints, which one-command deploys retired, in one line saying what to do', () => {
    for (const value of [false, 'false', true]) {
      expect(() => contextOf({ 'sluice:scoringEndpoints': value })).toThrow(
        /^context sluice:scoringEndpoints is no longer used: the stack now uploads the committed model archives itself[^\n]*$/,
      );
    }
  });

  it('accepts pipelines as a list, a JSON string (-c) or a comma-separated string', () => {
    for (const pipelines of [['docs', 'notes'], '["docs","notes"]', 'docs, notes']) {
      expect(contextOf({ 'sluice:pipelines': pipelines }).pipelines).toEqual(['docs', 'notes']);
    }
  });

  it('refuses a bad instance type and a repeated pipeline with one line naming the key', () => {
    expect(() => contextOf({ 'sluice:embeddingInstanceType': 'g5.xlarge' })).toThrow(
      /sluice:embeddingInstanceType "g5.xlarge"/,
    );
    expect(() => contextOf({ 'sluice:pipelines': 'docs,docs' })).toThrow(/names a pipeline twice/);
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

  it('refuses pipelines that share an endpoint but scale its one inference component differently', () => {
    const alwaysOn = withName(docs, 'other', {
      endpoint: { ...docs.endpoint, capacity: { mode: 'always-on', minCopies: 1, maxCopies: 4 } },
    });
    expect(() => endpointSpecs([docs, alwaysOn])).toThrow(
      /^pipelines docs and other share endpoint sluice-docs-embed but scale it differently \(endpoint.capacity: run-scoped, up to 4 copies and always-on, 1 to 4 copies\): use one endpoint.capacity.mode, minCopies and maxCopies or another endpoint name$/,
    );
    // What is read per run may differ: the cooldown, the per-copy throughput.
    const patient = withName(docs, 'patient', {
      endpoint: { ...docs.endpoint, capacity: { ...docs.endpoint.capacity, cooldownSeconds: 900 } },
    });
    expect(endpointSpecs([docs, patient])).toEqual([
      expect.objectContaining({ pipelines: ['docs', 'patient'], capacity: docs.endpoint.capacity }),
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

describe('scoringEndpointSpecs', () => {
  it('deploys the model.tar.gz beside the JSON model unless model.modelDataKey names one', () => {
    expect(scoringEndpointSpecs([docs, creditRisk])).toEqual([
      {
        endpointName: 'sluice-credit-risk',
        hosting: 'instance',
        instanceType: 'ml.m5.large',
        capacity: creditRisk.model.capacity,
        serverless: creditRisk.model.serverless,
        modelDataKey: 'models/credit-risk/model.tar.gz',
        pipelines: ['credit-risk'],
      },
    ]);
    expect(modelDataKeyOf({ ...creditRisk.model, modelDataKey: 'models/credit-risk/v7/model.tar.gz' })).toBe(
      'models/credit-risk/v7/model.tar.gz',
    );
  });

  it('shares one endpoint between score pipelines that name it, and refuses two models on one endpoint', () => {
    const nightly = scoreVariant('nightly');
    expect(scoringEndpointSpecs([creditRisk, nightly])).toEqual([
      expect.objectContaining({ endpointName: 'sluice-credit-risk', pipelines: ['credit-risk', 'nightly'] }),
    ]);
    const other = scoreVariant('other', { model: { modelKey: 'models/other/model.json' } });
    expect(() => scoringEndpointSpecs([creditRisk, other])).toThrow(
      /share endpoint sluice-credit-risk but load models models\/credit-risk\/model.tar.gz and models\/other\/model.tar.gz/,
    );
    const bigger = scoreVariant('bigger', { model: { instanceType: 'ml.m5.xlarge' } });
    expect(() => scoringEndpointSpecs([creditRisk, bigger])).toThrow(
      /ask for instance types ml.m5.large and ml.m5.xlarge/,
    );
  });

  it('refuses model files the deployed functions or SageMaker could not read', () => {
    expect(() =>
      scoringEndpointSpecs([
        scoreVariant('elsewhere', { featureStats: { key: 'stats/feature-stats.json' } }),
      ]),
    ).toThrow(/pipeline elsewhere: featureStats.key "stats\/feature-stats.json" must be under models\//);
    expect(() =>
      scoringEndpointSpecs([
        scoreVariant('zip', { model: { modelDataKey: 'models/credit-risk/model.zip' } }),
      ]),
    ).toThrow(/model.modelDataKey "models\/credit-risk\/model.zip" must name a .tar.gz archive/);
  });

  it('refuses an embedding and a scoring endpoint of the same name', () => {
    const clash = scoreVariant('clash', { model: { endpointName: docs.endpoint.name } });
    expect(() => checkEndpointNames(endpointSpecs([docs]), scoringEndpointSpecs([clash]))).toThrow(
      /endpoint sluice-docs-embed is named by embed pipelines docs and score pipelines clash/,
    );
  });
});

describe('parseEcrImageUri', () => {
  it('finds the registry account, region and repository of an ECR image', () => {
    expect(parseEcrImageUri(TEST_TEI_IMAGE_URI)).toEqual({
      account: '683313688378',
      region: 'us-east-1',
      repository: 'tei',
    });
    expect(
      parseEcrImageUri('450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-xgboost:1.7-1'),
    ).toEqual({ account: '450853457545', region: 'cn-north-1', repository: 'sagemaker-xgboost' });
    expect(
      parseEcrImageUri(`123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/tei@sha256:${'a'.repeat(64)}`),
    ).toEqual({ account: '123456789012', region: 'eu-west-1', repository: 'team/tei' });
  });

  it('refuses images outside ECR, which SageMaker cannot pull', () => {
    expect(() =>
      parseEcrImageUri('ghcr.io/huggingface/text-embeddings-inference:1.5', 'sluice:teiImageUri'),
    ).toThrow(
      /sluice:teiImageUri "ghcr.io\/huggingface\/text-embeddings-inference:1.5" is not an ECR image URI/,
    );
  });
});
