import { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../functions/config/environment.ts';
import type { SluiceFunction } from '../../infra/constructs/sluice-function.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  bundledPipelines,
  codeAssetOf,
  loadCreditRiskPipeline,
  loadDocsPipeline,
} from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

/** Lambda refuses a function whose environment variables (names and values) pass 4 KB together. */
const LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096;
/**
 * What a `Ref` or `Fn::GetAtt` in an environment value can resolve to, at most: bucket names
 * are at most 63 bytes, table names 255, queue URLs about 130.
 */
const RESOLVED_TOKEN_MAX_BYTES = 256;
const PIPELINE_COUNT = 12;

let pipelines: PipelineConfig[];
let stack: SluiceStack;
let template: Template;
let onePipeline: SluiceStack;

/**
 * Twelve pipelines cloned from the checked-in pair, alternating embed and score (about
 * 16 KB of configs, four times what the whole environment may hold). The clones share
 * their endpoints, as pipelines reading different folders with one model do.
 */
async function generatedPipelines(): Promise<PipelineConfig[]> {
  const [docs, creditRisk] = [await loadDocsPipeline(), await loadCreditRiskPipeline()];
  return Array.from({ length: PIPELINE_COUNT }, (_, i) => {
    const base = i % 2 === 0 ? docs : creditRisk;
    const name = `${base.name}-${String(i + 1).padStart(2, '0')}`;
    return parsePipelineConfig({ ...base, name, description: `${base.description} (copy ${name})` });
  });
}

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId(construct.node.defaultChild as never);
const functionsOf = (s: SluiceStack): SluiceFunction[] => [
  s.functions.plan,
  s.functions.work,
  s.functions.finalize,
  s.functions.deadLetter,
  // With an instance endpoint (every embed pipeline), the capacity sweeper too.
  ...(s.capacitySweeper ? [s.capacitySweeper.function] : []),
];
const variablesOf = (fn: SluiceFunction): Record<string, Cfn> =>
  Template.fromStack(Stack.of(fn)).toJSON().Resources[idOf(fn.function)].Properties.Environment.Variables;

/** The most bytes the deployed environment can take, each token counted at its largest resolved size. */
function worstCaseEnvironmentBytes(variables: Record<string, Cfn>): number {
  return Object.entries(variables).reduce(
    (sum, [name, value]) =>
      sum +
      Buffer.byteLength(name) +
      (typeof value === 'string' ? Buffer.byteLength(value) : RESOLVED_TOKEN_MAX_BYTES),
    0,
  );
}

beforeAll(async () => {
  pipelines = await generatedPipelines();
  stack = buildStack({ pipelines }, { nag: true }).stack;
  template = Template.fromStack(stack);
  onePipeline = buildStack({ pipelines: [await loadDocsPipeline()] }).stack;
  // Two stacks, one with cdk-nag over twelve pipelines' endpoints and capacity: minutes on a busy machine.
}, 300_000);

describe(`SluiceStack with ${PIPELINE_COUNT} pipelines`, () => {
  it('synthesizes although the configs together are far bigger than the 4 KB environment', () => {
    expect(Buffer.byteLength(JSON.stringify(pipelines))).toBeGreaterThan(3 * LAMBDA_ENVIRONMENT_LIMIT_BYTES);
    // + CDK's S3 notifications handler and, with score pipelines, its BucketDeployment handler (ModelFiles).
    const cdkHandlers = stack.modelFiles ? 2 : 1;
    template.resourceCountIs('AWS::Lambda::Function', functionsOf(stack).length + cdkHandlers);
  });

  it('keeps every function environment well under 4 KB, even with every reference at its longest', () => {
    for (const fn of functionsOf(stack)) {
      expect(worstCaseEnvironmentBytes(variablesOf(fn))).toBeLessThan(LAMBDA_ENVIRONMENT_LIMIT_BYTES / 2);
    }
  });

  it('gives every function the same environment as a one-pipeline stack but for the configs hash', () => {
    for (const [many, one] of functionsOf(stack).map(
      (fn, i) => [fn, functionsOf(onePipeline)[i]!] as const,
    )) {
      const { SLUICE_PIPELINES_SHA256: manyHash, ...manyRest } = variablesOf(many);
      const { SLUICE_PIPELINES_SHA256: oneHash, ...oneRest } = variablesOf(one);
      expect(manyRest).toEqual(oneRest);
      expect(manyHash).not.toBe(oneHash);
    }
  });

  it('ships all twelve validated configs in every function code asset', () => {
    for (const fn of functionsOf(stack)) expect(bundledPipelines(fn)).toEqual(pipelines);
  });

  it('hands the handlers all twelve configs through the file and hash the environment names', () => {
    for (const fn of functionsOf(stack)) {
      const variables = variablesOf(fn);
      const env = loadEnvironment({
        SLUICE_BUCKET: 'sluice-data',
        SLUICE_RUNS_TABLE: 'sluice-runs',
        SLUICE_WORK_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work',
        SLUICE_FINALIZE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-finalize',
        SLUICE_PIPELINES_FILE: variables.SLUICE_PIPELINES_FILE,
        SLUICE_PIPELINES_SHA256: variables.SLUICE_PIPELINES_SHA256,
        // Where Lambda unpacks the code asset.
        LAMBDA_TASK_ROOT: codeAssetOf(fn).dir,
      });
      expect([...env.pipelines.values()]).toEqual(pipelines);
    }
  });

  it('passes the cdk-nag AwsSolutions checks', () => {
    const annotations = Annotations.fromStack(stack);
    expect(annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
    expect(annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });
});
