import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';
import { readContext } from './context.ts';
import { SluiceStack } from './sluice-stack.ts';

const app = new App();
const context = readContext(app.node);
const pipelines = await Promise.all(context.pipelines.map((name) => loadPipelineConfig('pipelines', name)));

new SluiceStack(app, context.stackName, {
  description: `Sluice batch embeddings and scoring (pipelines: ${context.pipelines.join(', ')})`,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  pipelines,
  teiImageUri: context.teiImageUri,
  hfModelId: context.hfModelId,
  embeddingInstanceType: context.embeddingInstanceType,
  xgboostImageUri: context.xgboostImageUri,
  scoringEndpoints: context.scoringEndpoints,
});

Aspects.of(app).add(new AwsSolutionsChecks());
