import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { buildStack, loadCreditRiskPipeline, loadDocsPipeline } from './sluice-stack-fixture.ts';

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
