import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { modelFilesOf } from '../../infra/constructs/model-files.ts';
import { deployedPipelines, deploymentNames } from '../../infra/deployment-names.ts';
import { scoringEndpointSpecs } from '../../infra/deployment-settings.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { buildStack } from './sluice-stack-fixture.ts';

/** The committed credit-risk model and archive, hosted as asked, with no endpoint name (issue 16, item 4). */
function unnamedScorePipeline(
  hosting: 'in-worker' | 'serverless' | 'instance',
  endpointName?: string,
): ScorePipelineConfig {
  return parsePipelineConfig({
    name: 'unnamed',
    kind: 'score',
    model: { modelKey: 'models/credit-risk/model.json', hosting, endpointName },
  }) as ScorePipelineConfig;
}

describe('a score pipeline without model.endpointName', () => {
  it('deploys in the worker: no endpoint is deployed, so none needs a name', () => {
    const pipeline = unnamedScorePipeline('in-worker');
    expect(scoringEndpointSpecs([pipeline])).toEqual([]);
    // Another stack's names leave it as it is (there is no endpoint name to prefix).
    expect(deployedPipelines([pipeline], deploymentNames('Staging'))).toEqual([pipeline]);
  });

  it.each(['serverless', 'instance'] as const)(
    'fails at synth with one line when hosted %s: the stack would deploy an endpoint with no name',
    (hosting) => {
      expect(() => buildStack({ pipelines: [unnamedScorePipeline(hosting)] })).toThrow(
        `pipeline unnamed: model.endpointName is required with model.hosting "${hosting}": the stack deploys a SageMaker endpoint by that name (or set model.hosting "in-worker", which needs none)`,
      );
    },
  );
});

describe('a pipeline whose spec is inferred from the model, hosted on an endpoint', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-inferred-deploy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uploads the JSON model beside the archive, since plan and the workers read its feature names', () => {
    const files = modelFilesOf([unnamedScorePipeline('serverless', 'sluice-unnamed')], 'pipelines');
    expect(files.map((f) => f.key)).toEqual([
      'models/credit-risk/model.tar.gz',
      'models/credit-risk/model.json',
    ]);
  });

  it('fails at synth with one line when only the archive is committed: every run would stop at plan', () => {
    mkdirSync(path.join(dir, 'models', 'credit-risk'), { recursive: true });
    cpSync(
      'pipelines/models/credit-risk/model.tar.gz',
      path.join(dir, 'models', 'credit-risk', 'model.tar.gz'),
    );
    expect(() => modelFilesOf([unnamedScorePipeline('instance', 'sluice-unnamed')], dir)).toThrow(
      /^pipeline unnamed: model.modelKey "models\/credit-risk\/model.json" is not in .*: featureSpec "infer" builds the spec from the feature names in the XGBoost JSON model, so the stack uploads it beside the archive; commit it there \(or write featureSpec.features\)$/,
    );
  });
});
