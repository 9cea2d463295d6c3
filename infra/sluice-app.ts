import type { App, Environment } from 'aws-cdk-lib';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';
import type { FunctionEntries } from './constructs/functions.ts';
import { PIPELINES_DIR } from './constructs/model-files.ts';
import { readContext } from './context.ts';
import { SluiceStack } from './sluice-stack.ts';

export interface SluiceAppOptions {
  /** Account and region of the stack; the region picks the endpoint images. */
  readonly env: Environment;
  /**
   * Handler entry files (tests pass tiny fixtures).
   * @default - the stack's own, functions/*.ts
   */
  readonly functionEntries?: FunctionEntries;
}

/**
 * Adds to `app` the stack its context describes (`cdk.json`, `-c`): the pipelines it
 * names, loaded from `pipelines/` and validated, and the image, model and naming choices.
 * `infra/app.ts` deploys this; the cfn-lint test lints what it synthesizes.
 */
export async function addSluiceStack(app: App, options: SluiceAppOptions): Promise<SluiceStack> {
  const context = readContext(app.node);
  const pipelines = await Promise.all(
    context.pipelines.map((name) => loadPipelineConfig(PIPELINES_DIR, name)),
  );
  return new SluiceStack(app, context.stackName, {
    description: `Sluice batch embeddings and scoring (pipelines: ${context.pipelines.join(', ')})`,
    env: options.env,
    pipelines,
    teiVersion: context.teiVersion,
    teiImageUri: context.teiImageUri,
    hfModelId: context.hfModelId,
    embeddingInstanceType: context.embeddingInstanceType,
    xgboostVersion: context.xgboostVersion,
    xgboostImageUri: context.xgboostImageUri,
    tgiVersion: context.tgiVersion,
    tgiImageUri: context.tgiImageUri,
    functionEntries: options.functionEntries,
  });
}
