import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { buildStack, loadDocsPipeline } from './sluice-stack-fixture.ts';

let stack: SluiceStack;
let template: Template;

beforeAll(async () => {
  stack = buildStack({ pipelines: [await loadDocsPipeline()] }).stack;
  template = Template.fromStack(stack);
}, 300_000);

describe('stack outputs the deployed CLI reads (docs/deployed-cli.md)', () => {
  it('outputs the runs table name, which sluice status --deployed --runs-table takes', () => {
    const table = Stack.of(stack).getLogicalId(stack.runsTable.table.node.defaultChild as never);
    template.hasOutput('RunsTableName', { Value: { Ref: table } });
  });

  it('outputs the workgroup and Glue database that --stack derives', () => {
    template.hasOutput('AthenaWorkGroupName', { Value: 'sluice' });
    template.hasOutput('GlueDatabaseName', { Value: 'sluice' });
  });
});
