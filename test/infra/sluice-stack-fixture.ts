import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { App, Aspects, RemovalPolicy, Stage } from 'aws-cdk-lib';
import type * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { AwsSolutionsChecks } from 'cdk-nag';
import { createObservability, type Step } from '../../functions/observability.ts';
import { type FunctionEntries, PIPELINES_FILE_NAME } from '../../infra/constructs/functions.ts';
import type { SluiceFunction } from '../../infra/constructs/sluice-function.ts';
import { DEFAULT_STACK_NAME } from '../../infra/deployment-names.ts';
import { SluiceStack, type SluiceStackProps } from '../../infra/sluice-stack.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import {
  asEmbedPipeline,
  type EmbedPipelineConfig,
  type ScorePipelineConfig,
} from '../../shared/config/pipeline-config.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');

/**
 * The TEI image a us-east-1 stack gets by default, written out (not computed from
 * infra/images) so a test fails when the table's default changes by accident: the `tei`
 * repository of SageMaker's registry 683313688378, TEI 1.8.2 (huggingface-tei.json).
 */
export const TEST_TEI_IMAGE_URI =
  '683313688378.dkr.ecr.us-east-1.amazonaws.com/tei:2.0.1-tei1.8.2-gpu-py310-cu122-ubuntu22.04';

/** The XGBoost image a us-east-1 stack gets by default (xgboost.json, 1.7-1), written out. */
export const TEST_XGBOOST_IMAGE_URI = '683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1';

/** Tiny stand-in handlers, so bundling is fast and does not depend on functions/. */
export const FIXTURE_ENTRIES: FunctionEntries = {
  plan: path.join(here, 'fixtures/plan.ts'),
  work: path.join(here, 'fixtures/work.ts'),
  finalize: path.join(here, 'fixtures/finalize.ts'),
  deadLetter: path.join(here, 'fixtures/dead-letter.ts'),
  capacitySweeper: path.join(here, 'fixtures/capacity-sweeper.ts'),
};

/** The checked-in `pipelines/docs.json`, validated the way the app loads it. */
export async function loadDocsPipeline(): Promise<EmbedPipelineConfig> {
  return asEmbedPipeline(await loadPipelineConfig(path.join(repoRoot, 'pipelines'), 'docs'));
}

/** The checked-in `pipelines/credit-risk.json` (a score pipeline), validated the way the app loads it. */
export async function loadCreditRiskPipeline(): Promise<ScorePipelineConfig> {
  const config = await loadPipelineConfig(path.join(repoRoot, 'pipelines'), 'credit-risk');
  if (config.kind !== 'score') throw new Error('pipelines/credit-risk.json is not a score pipeline');
  return config;
}

export interface BuiltStack {
  readonly app: App;
  readonly stack: SluiceStack;
}

/**
 * A SluiceStack in a fresh app, with fixture handlers and, when `nag` is set, the
 * cdk-nag AwsSolutions checks applied as `infra/app.ts` applies them. It is the default
 * stack, `Sluice`, so its account-unique names are the defaults (`sluice`); pass
 * `stackName` for another.
 */
export function buildStack(
  props: Partial<SluiceStackProps> & Pick<SluiceStackProps, 'pipelines'>,
  options: { nag?: boolean } = {},
): BuiltStack {
  const app = new App();
  const stack = new SluiceStack(app, DEFAULT_STACK_NAME, {
    env: { account: '123456789012', region: 'us-east-1' },
    functionEntries: FIXTURE_ENTRIES,
    dataRemovalPolicy: RemovalPolicy.DESTROY,
    ...props,
  });
  if (options.nag) Aspects.of(app).add(new AwsSolutionsChecks());
  return { app, stack };
}

/**
 * The folder CDK staged a function's code asset in (what Lambda unpacks to
 * `LAMBDA_TASK_ROOT`), and that asset's hash (the template's `Code.S3Key` is `<hash>.zip`).
 */
export function codeAssetOf(fn: SluiceFunction): { readonly dir: string; readonly hash: string } {
  const asset = fn.function.node.findChild('Code') as s3assets.Asset;
  const outdir = Stage.of(fn)?.outdir;
  if (outdir === undefined) throw new Error(`${fn.node.path} is in no stage`);
  return { dir: path.resolve(outdir, asset.assetPath), hash: asset.assetHash };
}

/** The pipeline configs a function's code asset carries, parsed from the staged bundle. */
export function bundledPipelines(fn: SluiceFunction): unknown {
  return JSON.parse(readFileSync(path.join(codeAssetOf(fn).dir, PIPELINES_FILE_NAME), 'utf8'));
}

/**
 * The EMF document the handler's Powertools metrics would print for one count, built by
 * functions/observability.ts with the Powertools variables the function is deployed with.
 */
// biome-ignore lint/suspicious/noExplicitAny: an EMF document is JSON with no static type here.
export function publishedEmf(step: Step, metricName: string, variables: Record<string, string>): any {
  const keys = ['POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_METRICS_NAMESPACE'] as const;
  const before = keys.map((key) => process.env[key]);
  try {
    for (const key of keys) process.env[key] = variables[key];
    const { metrics } = createObservability(step);
    metrics.addMetric(metricName, MetricUnit.Count, 1);
    return metrics.serializeMetrics();
  } finally {
    keys.forEach((key, i) => {
      const value = before[i];
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    });
  }
}
