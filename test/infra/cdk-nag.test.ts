import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { buildStack, loadCreditRiskPipeline, loadDocsPipeline } from './sluice-stack-fixture.ts';

const pipelinesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipelines');

interface NagSuppression {
  readonly id: string;
  readonly reason: string;
  readonly applies_to?: readonly unknown[];
}

let stack: SluiceStack;
let annotations: Annotations;

// The default deployment (cdk.json): an embed and a score pipeline, so both endpoint
// kinds and every function grant are checked.
beforeAll(async () => {
  stack = buildStack(
    { pipelines: [await loadDocsPipeline(), await loadCreditRiskPipeline()] },
    { nag: true },
  ).stack;
  annotations = Annotations.fromStack(stack);
});

describe('cdk-nag AwsSolutions checks on the docs and credit-risk pipelines', () => {
  it('report no unsuppressed errors', () => {
    expect(annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });

  it('report no unsuppressed warnings', () => {
    expect(annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });

  it('give every suppression a specific reason and name the exact wildcards IAM5 accepts', () => {
    const resources = Object.values(Template.fromStack(stack).toJSON().Resources) as {
      Metadata?: { cdk_nag?: { rules_to_suppress?: NagSuppression[] } };
    }[];
    const suppressions = resources.flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? []);
    expect(suppressions.length).toBeGreaterThan(0);
    for (const suppression of suppressions) {
      expect(suppression.reason.length, suppression.id).toBeGreaterThanOrEqual(60);
      if (suppression.id === 'AwsSolutions-IAM5' || suppression.id === 'AwsSolutions-IAM4') {
        expect(suppression.applies_to?.length, `${suppression.id}: ${suppression.reason}`).toBeGreaterThan(0);
      }
    }
  });
});

// Every shipped pipeline: endpoint and compute pools, so the stack has WorkCompute, the
// compute queue and its dead-letter queues (issue 14), besides the LLM endpoint and the
// recommendations table.
describe('cdk-nag AwsSolutions checks on every shipped pipeline (two work functions)', () => {
  let split: SluiceStack;
  let splitAnnotations: Annotations;
  beforeAll(async () => {
    const names = ['docs', 'credit-risk', 'generate-triage', 'recommend'];
    split = buildStack(
      { pipelines: await Promise.all(names.map((name) => loadPipelineConfig(pipelinesDir, name))) },
      { nag: true },
    ).stack;
    splitAnnotations = Annotations.fromStack(split);
  }, 120_000);

  it('is a split stack', () => {
    expect(split.functions.workCompute).toBeDefined();
  });

  it('report no unsuppressed errors or warnings', () => {
    expect(splitAnnotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
    expect(splitAnnotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });
});
