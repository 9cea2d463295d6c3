import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemovalPolicy, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { expectCfnLintClean, expectNoNagFindings } from '../support/template-checks.ts';
import { buildStack, loadDocsPipeline } from './sluice-stack-fixture.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let recommend: PipelineConfig;
let stack: SluiceStack;
let template: Template;
/** A stack with an embed pipeline only: no recommend pipeline, no recommendations table. */
let embedOnly: Template;

const idOf = (construct: { node: { defaultChild?: unknown } }, of: Stack): string =>
  of.getLogicalId(construct.node.defaultChild as never);

beforeAll(async () => {
  recommend = await loadPipelineConfig(path.join(repoRoot, 'pipelines'), 'recommend');
  stack = buildStack(
    { pipelines: [await loadDocsPipeline(), recommend], dataRemovalPolicy: RemovalPolicy.RETAIN },
    { nag: true },
  ).stack;
  template = Template.fromStack(stack);
  embedOnly = Template.fromStack(buildStack({ pipelines: [await loadDocsPipeline()] }).stack);
}, 300_000);

/** The statements of every IAM policy attached to a function's role. */
function statementsOf(fn: { role: unknown }): { Action: string | string[]; Resource: unknown }[] {
  const roleId = stack.getLogicalId((fn.role as { node: { defaultChild: never } }).node.defaultChild);
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('the recommendations table (recommend pipelines: users’ lists served by key)', () => {
  it('is on-demand, keyed pk/sk, with point-in-time recovery and encryption, kept as the runs table is', () => {
    const tables = template.findResources('AWS::DynamoDB::Table');
    expect(Object.keys(tables)).toHaveLength(2);
    const id = idOf(stack.recommendationsTable!.table, stack);
    const runsId = idOf(stack.runsTable.table, stack);
    expect(tables[id]!.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    expect(tables[id]!.Properties.GlobalSecondaryIndexes).toBeUndefined();
    expect(tables[id]!.DeletionPolicy).toBe('Retain');
    expect(tables[id]!.DeletionPolicy).toBe(tables[runsId]!.DeletionPolicy);
    expect(tables[id]!.UpdateReplacePolicy).toBe(tables[runsId]!.UpdateReplacePolicy);
  });

  it('is not created when no pipeline is kind recommend', () => {
    embedOnly.resourceCountIs('AWS::DynamoDB::Table', 1);
    expect(Object.keys(embedOnly.findOutputs('RecommendationsTableName'))).toEqual([]);
    expect(JSON.stringify(embedOnly.toJSON())).not.toContain('SLUICE_RECOMMENDATIONS_TABLE');
  });

  // docs and recommend split into two work pools (issue 14): recommend's units run on WorkCompute.
  it("is named to the compute pool's work function only, and the stack outputs its name for sluice recommend --deployed", () => {
    const ref = { Ref: idOf(stack.recommendationsTable!.table, stack) };
    template.hasOutput('RecommendationsTableName', { Value: ref });
    const { plan, work, workCompute, finalize, deadLetter } = stack.functions;
    const envOf = (fn: typeof work) =>
      template.toJSON().Resources[idOf(fn.function as never, stack)].Properties.Environment.Variables;
    expect(envOf(workCompute!).SLUICE_RECOMMENDATIONS_TABLE).toEqual(ref);
    for (const fn of [plan, work, finalize, deadLetter])
      expect(envOf(fn).SLUICE_RECOMMENDATIONS_TABLE).toBeUndefined();
  });

  it("grants BatchWriteItem and Query on it to the compute pool's work function, and nothing on it to any other function", () => {
    const arn = { 'Fn::GetAtt': [idOf(stack.recommendationsTable!.table, stack), 'Arn'] };
    const onTable = (fn: { role: unknown }) =>
      statementsOf(fn)
        .filter((s) => JSON.stringify(s.Resource).includes(JSON.stringify(arn)))
        .flatMap((s) => [s.Action].flat());
    const { plan, work, workCompute, finalize, deadLetter } = stack.functions;
    // Query finds a user's superseded lists; BatchWriteItem puts lists and deletes those.
    expect(onTable(workCompute!)).toEqual(['dynamodb:BatchWriteItem', 'dynamodb:Query']);
    for (const fn of [plan, work, finalize, deadLetter]) expect(onTable(fn)).toEqual([]);
    // No other statement reaches the table through a wildcard or its index.
    const all = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(all.match(new RegExp(`${idOf(stack.recommendationsTable!.table, stack)}`, 'g'))).toHaveLength(1);
  });

  it('sits beside the recommendations Glue table (Athena), with the contract columns', () => {
    const glue = Object.values(template.findResources('AWS::Glue::Table')).find(
      (t) => t.Properties.TableInput.Name === 'recommendations',
    );
    expect(glue).toBeDefined();
    const columns = glue!.Properties.TableInput.StorageDescriptor.Columns.map(
      (c: { Name: string }) => c.Name,
    );
    expect(columns).toEqual(['run_id', 'user_id', 'rank', 'item_id', 'score', 'source', 'neighbours']);
    expect(glue!.Properties.TableInput.Parameters['projection.pipeline.values']).toBe('docs,recommend');
  });

  it('passes cdk-nag AwsSolutions with no unsuppressed finding', () => expectNoNagFindings(stack));

  it('passes cfn-lint in every region Sluice deploys to with inference components', () => {
    expectCfnLintClean(template);
  }, 120_000);
});
