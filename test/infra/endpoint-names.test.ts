import { describe, expect, it } from 'vitest';
import { deployedPipelines, deploymentNames } from '../../infra/deployment-names.ts';
import { scoringEndpointSpecs } from '../../infra/deployment-settings.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { buildStack } from './sluice-stack-fixture.ts';

/** The committed credit-risk model and archive, hosted as asked, with no endpoint name (issue 16, item 4). */
function unnamedScorePipeline(hosting: 'in-worker' | 'serverless' | 'instance'): ScorePipelineConfig {
  return parsePipelineConfig({
    name: 'unnamed',
    kind: 'score',
    model: { modelKey: 'models/credit-risk/model.json', hosting },
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
