import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemovalPolicy, type Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOYABLE_REGIONS, REGIONS_WITHOUT_INFERENCE_COMPONENTS } from '../../infra/images/registries.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { buildStack, loadDocsPipeline } from './sluice-stack-fixture.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const scratch = mkdtempSync(path.join(tmpdir(), 'sluice-recs-infra-'));

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
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

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

  it('is named to the work function only, and the stack outputs its name for sluice recommend --deployed', () => {
    const ref = { Ref: idOf(stack.recommendationsTable!.table, stack) };
    template.hasOutput('RecommendationsTableName', { Value: ref });
    const { plan, work, finalize, deadLetter } = stack.functions;
    const envOf = (fn: typeof work) =>
      template.toJSON().Resources[idOf(fn.function as never, stack)].Properties.Environment.Variables;
    expect(envOf(work).SLUICE_RECOMMENDATIONS_TABLE).toEqual(ref);
    for (const fn of [plan, finalize, deadLetter])
      expect(envOf(fn).SLUICE_RECOMMENDATIONS_TABLE).toBeUndefined();
  });

  it('grants BatchWriteItem on it to the work function, and nothing on it to any other function', () => {
    const arn = { 'Fn::GetAtt': [idOf(stack.recommendationsTable!.table, stack), 'Arn'] };
    const onTable = (fn: { role: unknown }) =>
      statementsOf(fn)
        .filter((s) => JSON.stringify(s.Resource).includes(JSON.stringify(arn)))
        .flatMap((s) => [s.Action].flat());
    const { plan, work, finalize, deadLetter } = stack.functions;
    expect(onTable(work)).toEqual(['dynamodb:BatchWriteItem']);
    for (const fn of [plan, finalize, deadLetter]) expect(onTable(fn)).toEqual([]);
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

  it('passes cdk-nag AwsSolutions with no unsuppressed finding', () => {
    const annotations = Annotations.fromStack(stack);
    expect(annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
    expect(annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });

  it('passes cfn-lint in every region Sluice deploys to', () => {
    const file = path.join(scratch, 'recommend.template.json');
    writeFileSync(file, JSON.stringify(template.toJSON()));
    const regions = DEPLOYABLE_REGIONS.filter((r) => !REGIONS_WITHOUT_INFERENCE_COMPONENTS.includes(r));
    const run = spawnSync(
      'cfn-lint',
      [
        '--config-file',
        path.join(repoRoot, '.cfnlintrc.yaml'),
        '--format',
        'parseable',
        '--regions',
        ...regions,
        '--',
        file,
      ],
      { encoding: 'utf8' },
    );
    expect(run.error).toBeUndefined();
    expect(run.stdout.trim()).toBe('');
    expect(run.status).toBe(0);
  }, 120_000);
});
