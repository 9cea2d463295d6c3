import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_ONLY_MODELS, withDeployedModels } from '../../infra/deployment-settings.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import {
  type EmbedPipelineConfig,
  parseEmbedPipelineConfig,
  type ScorePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  bundledPipelines,
  loadCreditRiskPipeline,
  loadDocsPipeline,
} from './sluice-stack-fixture.ts';

let docs: EmbedPipelineConfig;
let creditRisk: ScorePipelineConfig;
beforeAll(async () => {
  docs = await loadDocsPipeline();
  creditRisk = await loadCreditRiskPipeline();
});

/** docs without `endpoint.model`, so the schema's default (the local hash embedder) fills it in. */
const withoutModel = (): EmbedPipelineConfig => {
  const { model: _model, ...endpoint } = docs.endpoint;
  return parseEmbedPipelineConfig({ ...docs, endpoint });
};

describe('withDeployedModels', () => {
  it("knows the schema's default model is the local-only hash embedder", () => {
    expect(LOCAL_ONLY_MODELS).toContain(withoutModel().endpoint.model);
  });

  it('makes sluice:hfModelId the endpoint.model of every embed pipeline and leaves score pipelines alone', () => {
    const [embed, score] = withDeployedModels([docs, creditRisk], 'intfloat/e5-small-v2');
    expect(embed).toEqual({ ...docs, endpoint: { ...docs.endpoint, model: 'intfloat/e5-small-v2' } });
    expect(score).toBe(creditRisk);
    expect(withDeployedModels([docs])[0]).toBe(docs);
  });

  it('refuses a local-only model in one line naming the pipeline file and the fix', () => {
    expect(() => withDeployedModels([withoutModel()])).toThrow(
      /^pipeline docs: endpoint.model is "sluice-hash-embed-v1", a local-only model that no SageMaker endpoint serves: set endpoint.model in pipelines\/docs.json to a Hugging Face model id \(e.g. "BAAI\/bge-small-en-v1.5"\) or pass -c sluice:hfModelId=<model id>$/,
    );
    expect(() => withDeployedModels([docs], 'sluice-hash-embed-v1')).toThrow(
      /^context sluice:hfModelId is "sluice-hash-embed-v1", a local-only model/,
    );
  });

  it('lets sluice:hfModelId deploy a pipeline that names no model', () => {
    expect(withDeployedModels([withoutModel()], 'BAAI/bge-small-en-v1.5')[0]).toMatchObject({
      endpoint: { model: 'BAAI/bge-small-en-v1.5' },
    });
  });
});

describe('SluiceStack models', () => {
  // Synthesizing a whole stack takes tens of seconds on a loaded machine: once, in a hook.
  let overridden: SluiceStack;
  beforeAll(() => {
    overridden = buildStack({ pipelines: [docs, creditRisk], hfModelId: 'intfloat/e5-small-v2' }).stack;
  }, 180_000);

  it('fails synth, before any endpoint exists, for an embed pipeline without a deployable model', () => {
    expect(() => buildStack({ pipelines: [withoutModel()] })).toThrow(
      /^pipeline docs: endpoint.model is "sluice-hash-embed-v1", a local-only model/,
    );
  });

  it('records and fingerprints the model sluice:hfModelId serves: the functions get it in their pipelines file', () => {
    const stack = overridden;
    Template.fromStack(stack).hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: { Environment: { HF_MODEL_ID: 'intfloat/e5-small-v2' } },
    });
    for (const fn of [stack.functions.plan, stack.functions.work, stack.functions.finalize]) {
      const [embed, score] = bundledPipelines(fn) as [EmbedPipelineConfig, ScorePipelineConfig];
      expect(embed.endpoint.model).toBe('intfloat/e5-small-v2');
      expect(score).toEqual(creditRisk);
    }
    expect(stack.pipelines[0]).toMatchObject({ endpoint: { model: 'intfloat/e5-small-v2' } });
  });
});
