import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../infra/constructs/functions.ts';
import type { SluiceFunction } from '../../infra/constructs/sluice-function.ts';
import { deploymentSettings } from '../../infra/deployment-settings.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { buildStack } from './sluice-stack-fixture.ts';

const pipelinesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipelines');
const SHIPPED = ['docs', 'credit-risk', 'generate-triage', 'recommend'] as const;

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON has no static type here.
type Cfn = any;

let shipped: Record<(typeof SHIPPED)[number], PipelineConfig>;
/** credit-risk scored in the worker, with workers bigger than recommend's: the compute pool's maxima. */
let inWorker: PipelineConfig;
/** Every shipped pipeline (pipelines/*.json), as one stack: split. */
let all: { stack: SluiceStack; template: Cfn };
/** The shipped pipelines and the in-worker one. */
let mixed: { stack: SluiceStack; template: Cfn };

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId(construct.node.defaultChild as never);
const resourceOf = (built: { template: Cfn }, construct: IConstruct) =>
  built.template.Resources[idOf(construct)];
const getAtt = (construct: IConstruct) => ({ 'Fn::GetAtt': [idOf(construct), 'Arn'] });

/** The statements of a function's role policy, each as its actions and its resources in JSON. */
function statementsOf(
  built: { template: Cfn },
  fn: SluiceFunction,
): { actions: string[]; resources: string }[] {
  const policy = resourceOf(built, fn.role.node.findChild('DefaultPolicy'));
  return (policy.Properties.PolicyDocument.Statement as Cfn[]).map((s) => ({
    actions: [s.Action].flat(),
    resources: JSON.stringify([s.Resource].flat()),
  }));
}

/** Whether `fn` may do `action` on a resource whose JSON contains `fragment`. */
function allows(built: { template: Cfn }, fn: SluiceFunction, action: string, fragment: string): boolean {
  return statementsOf(built, fn).some((s) => s.actions.includes(action) && s.resources.includes(fragment));
}

const arnJson = (construct: IConstruct) => JSON.stringify(getAtt(construct));

function mappingsOf(built: { template: Cfn }, fn: SluiceFunction): Cfn[] {
  return Object.values(built.template.Resources as Record<string, Cfn>)
    .filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping')
    .filter((r) => JSON.stringify(r.Properties.FunctionName) === JSON.stringify({ Ref: idOf(fn.function) }))
    .map((r) => r.Properties);
}

const variablesOf = (built: { template: Cfn }, fn: SluiceFunction): Record<string, unknown> =>
  resourceOf(built, fn.function).Properties.Environment.Variables;

beforeAll(async () => {
  const loaded = await Promise.all(SHIPPED.map((name) => loadPipelineConfig(pipelinesDir, name)));
  shipped = Object.fromEntries(SHIPPED.map((name, i) => [name, loaded[i]!])) as typeof shipped;
  const creditRisk = shipped['credit-risk'];
  if (creditRisk.kind !== 'score') throw new Error('pipelines/credit-risk.json is not a score pipeline');
  inWorker = parsePipelineConfig({
    ...creditRisk,
    name: 'credit-risk-in-worker',
    schedule: undefined,
    model: { ...creditRisk.model, endpointName: 'unused-in-worker', hosting: 'in-worker' },
    workers: { maxConcurrency: 24, timeoutSeconds: 900, memoryMiB: 3008, maxReceiveCount: 7 },
  });
  const build = (pipelines: PipelineConfig[]) => {
    const { stack } = buildStack({ pipelines });
    return { stack, template: Template.fromStack(stack).toJSON() };
  };
  all = build(loaded);
  mixed = build([...loaded, inWorker]);
}, 120_000);

describe('deploymentSettings by work pool', () => {
  it('sizes one work function by every pipeline when the pipelines are all in one pool', () => {
    for (const pipelines of [
      [shipped.docs, shipped['credit-risk'], shipped['generate-triage']],
      [shipped.recommend, inWorker],
    ]) {
      const settings = deploymentSettings(pipelines);
      expect(settings.workCompute).toBeUndefined();
      expect(settings.workMemoryMiB).toBe(Math.max(...pipelines.map((p) => p.workers.memoryMiB)));
    }
  });

  it('sizes Work by the endpoint pool and WorkCompute by the compute pool when both exist', () => {
    const settings = deploymentSettings([...Object.values(shipped), inWorker]);
    expect(settings).toEqual({
      workTimeoutSeconds: 600,
      workMemoryMiB: 704,
      workMaxConcurrency: 8,
      // Stack-wide: the in-worker pipeline's 7.
      maxReceiveCount: 7,
      workCompute: { timeoutSeconds: 900, memoryMiB: 3008, maxConcurrency: 24 },
    });
  });
});

describe('a stack whose pipelines are all in one work pool', () => {
  it('has one work function, one work queue, no compute variable and no compute output', async () => {
    for (const pipelines of [[shipped.docs, shipped['credit-risk']], [shipped.recommend]]) {
      const { stack } = buildStack({ pipelines });
      const template = Template.fromStack(stack).toJSON();
      expect(stack.functions.workCompute).toBeUndefined();
      expect(stack.queues.workCompute).toBeUndefined();
      expect(JSON.stringify(template)).not.toContain(ENV.workComputeQueueUrl);
      expect(Object.keys(template.Outputs)).not.toContain('WorkComputeQueueUrl');
      expect(stack.queues.deadLetterQueues.map((q) => q.name)).toEqual([
        'ingest',
        'work',
        'work-dead-letters',
        'finalize',
      ]);
      // Finalize plans a run's later stage (credit-risk's score after its fit, recommend's
      // similarity after its ingest) and sends its units, or asks for its own finalize.
      const built = { template };
      const sends = statementsOf(built, stack.functions.finalize)
        .filter((s) => s.actions.includes('sqs:SendMessage'))
        .map((s) => s.resources)
        .sort();
      const arn = (queue: IConstruct) => JSON.stringify([getAtt(queue)]);
      expect(sends).toEqual([arn(stack.queues.work.queue), arn(stack.queues.finalize.queue)].sort());
    }
  }, 60_000);
});

describe('a stack with endpoint and compute pipelines (every shipped pipeline)', () => {
  it('runs the endpoint pool on Work at its own size and the compute pool on WorkCompute at its own', () => {
    const { functions } = all.stack;
    expect(resourceOf(all, functions.work.function).Properties).toMatchObject({
      MemorySize: 704,
      Timeout: 600,
    });
    // recommend.json sets no workers: the schema's default 2048 MiB.
    expect(shipped.recommend.workers.memoryMiB).toBe(2048);
    expect(resourceOf(all, functions.workCompute!.function).Properties).toMatchObject({
      MemorySize: 2048,
      Timeout: 600,
    });
    // Both run the same handler (the fixture entry here): the same code asset.
    expect(resourceOf(all, functions.workCompute!.function).Properties.Code).toEqual(
      resourceOf(all, functions.work.function).Properties.Code,
    );
    expect(resourceOf(mixed, mixed.stack.functions.workCompute!.function).Properties).toMatchObject({
      MemorySize: 3008,
      Timeout: 900,
    });
    expect(resourceOf(mixed, mixed.stack.functions.work.function).Properties.MemorySize).toBe(704);
  });

  it('gives the compute queue its own DLQ and overflow, hidden 6x WorkCompute timeout, stack-wide maxReceiveCount', () => {
    const compute = mixed.stack.queues.workCompute!;
    expect(resourceOf(mixed, compute.queue).Properties).toMatchObject({
      VisibilityTimeout: 6 * 900,
      RedrivePolicy: { deadLetterTargetArn: getAtt(compute.deadLetterQueue), maxReceiveCount: 7 },
    });
    expect(resourceOf(mixed, mixed.stack.queues.work.queue).Properties.VisibilityTimeout).toBe(6 * 600);
    expect(resourceOf(mixed, compute.deadLetterQueue).Properties).toMatchObject({
      VisibilityTimeout: 6 * 60,
      MessageRetentionPeriod: 14 * 86_400,
      RedrivePolicy: { deadLetterTargetArn: getAtt(compute.deadLetterOverflow), maxReceiveCount: 7 },
    });
  });

  it('feeds each work function from its own queue, one unit at a time, each at its pool concurrency', () => {
    const { functions, queues } = mixed.stack;
    const source = (fn: SluiceFunction) => {
      const mappings = mappingsOf(mixed, fn);
      expect(mappings).toHaveLength(1);
      return mappings[0];
    };
    expect(source(functions.work)).toMatchObject({
      EventSourceArn: getAtt(queues.work.queue),
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 8 },
    });
    expect(source(functions.workCompute!)).toMatchObject({
      EventSourceArn: getAtt(queues.workCompute!.queue),
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 24 },
    });
  });

  it('lets the dead-letter function consume both work dead-letter queues', () => {
    const { functions, queues } = all.stack;
    const sources = mappingsOf(all, functions.deadLetter);
    expect(sources.map((s) => s.EventSourceArn)).toEqual([
      getAtt(queues.work.deadLetterQueue),
      getAtt(queues.workCompute!.deadLetterQueue),
    ]);
    for (const s of sources)
      expect(s).toMatchObject({ BatchSize: 10, FunctionResponseTypes: ['ReportBatchItemFailures'] });
  });

  it('tells plan, both work functions, finalize and dead-letter the compute queue URL, and not the sweeper', () => {
    const { functions, queues, capacitySweeper } = all.stack;
    for (const fn of [
      functions.plan,
      functions.work,
      functions.workCompute!,
      functions.finalize,
      functions.deadLetter,
    ])
      expect(variablesOf(all, fn)[ENV.workComputeQueueUrl], fn.node.path).toEqual({
        Ref: idOf(queues.workCompute!.queue),
      });
    expect(variablesOf(all, capacitySweeper!.function)[ENV.workComputeQueueUrl]).toBeUndefined();
    // WorkCompute does not follow the endpoint copies: no mapping id anywhere names its source.
    expect(variablesOf(all, functions.workCompute!)[ENV.workEventSourceId]).toBeUndefined();
    expect(all.template.Outputs.WorkComputeQueueUrl).toMatchObject({
      Value: { Ref: idOf(queues.workCompute!.queue) },
    });
    // Both queues `sluice redrive` sends to are outputs (docs/runbook.md, Redrive).
    expect(all.template.Outputs.WorkQueueUrl).toMatchObject({ Value: { Ref: idOf(queues.work.queue) } });
  });

  it('lets only Work call the endpoints and read tokenizers and the prompt cache', () => {
    const { functions } = all.stack;
    const compute = functions.workCompute!;
    expect(
      statementsOf(all, functions.work).some((s) => s.actions.includes('sagemaker:InvokeEndpoint')),
    ).toBe(true);
    expect(statementsOf(all, compute).some((s) => s.actions.some((a) => a.startsWith('sagemaker:')))).toBe(
      false,
    );
    expect(allows(all, functions.work, 's3:GetObject', '/cache/prompts/*')).toBe(true);
    // The old S3 prompt cache is only read now (the cache lives in the runs table).
    expect(allows(all, functions.work, 's3:PutObject', '/cache/prompts/*')).toBe(false);
    expect(JSON.stringify(statementsOf(all, compute))).not.toContain('/cache/prompts/');
  });

  it('lets only WorkCompute read runs/ (recommend), write the recommendations table and read pinned model versions in-worker', () => {
    const { functions, recommendationsTable } = mixed.stack;
    const compute = functions.workCompute!;
    const table = arnJson(recommendationsTable!.table);
    expect(allows(mixed, compute, 's3:GetObject', '/runs/*')).toBe(true);
    expect(allows(mixed, functions.work, 's3:GetObject', '/runs/*')).toBe(false);
    expect(allows(mixed, compute, 'dynamodb:BatchWriteItem', table)).toBe(true);
    expect(allows(mixed, functions.work, 'dynamodb:BatchWriteItem', table)).toBe(false);
    expect(variablesOf(mixed, compute).SLUICE_RECOMMENDATIONS_TABLE).toEqual({
      Ref: idOf(recommendationsTable!.table),
    });
    expect(variablesOf(mixed, functions.work).SLUICE_RECOMMENDATIONS_TABLE).toBeUndefined();
    expect(allows(mixed, compute, 's3:GetObjectVersion', '/models/*')).toBe(true);
    expect(allows(mixed, functions.work, 's3:GetObjectVersion', '/models/*')).toBe(false);
    expect(allows(mixed, compute, 's3:GetObject', '/models/*')).toBe(true);
    // Every shipped pipeline but no in-worker one: WorkCompute runs recommend only, no models/.
    expect(JSON.stringify(statementsOf(all, all.stack.functions.workCompute!))).not.toContain('/models/');
  });

  it('leaves the runs table batches (the chunk index of embed pipelines) to Work', () => {
    const { functions, runsTable } = all.stack;
    const onRuns = (fn: SluiceFunction) =>
      statementsOf(all, fn)
        .filter((s) => s.resources === JSON.stringify([getAtt(runsTable.table)]))
        .flatMap((s) => s.actions)
        .sort();
    expect(onRuns(functions.work)).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
    expect(onRuns(functions.workCompute!)).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
  });

  it('lets each work function send to its own queue (checkpoints) and the finalize queue, and not the other work queue', () => {
    const { functions, queues } = all.stack;
    const sends = (fn: SluiceFunction) =>
      statementsOf(all, fn)
        .filter((s) => s.actions.includes('sqs:SendMessage'))
        .map((s) => s.resources)
        .sort();
    const arn = (queue: IConstruct) => JSON.stringify([getAtt(queue)]);
    expect(sends(functions.work)).toEqual([arn(queues.work.queue), arn(queues.finalize.queue)].sort());
    expect(sends(functions.workCompute!)).toEqual(
      [arn(queues.workCompute!.queue), arn(queues.finalize.queue)].sort(),
    );
    // Plan sends every pool's units, finalize a later stage's; dead-letter asks for finalize only.
    for (const fn of [functions.plan, functions.finalize])
      expect(sends(fn)).toEqual(
        [arn(queues.work.queue), arn(queues.workCompute!.queue), arn(queues.finalize.queue)].sort(),
      );
    expect(sends(functions.deadLetter)).toEqual([arn(queues.finalize.queue)]);
  });

  it('alarms on every dead-letter queue, the compute ones included', () => {
    const { queues, alarms } = all.stack;
    expect(queues.deadLetterQueues.map((q) => q.name)).toEqual([
      'ingest',
      'work',
      'work-dead-letters',
      'finalize',
      'work-compute',
      'work-compute-dead-letters',
    ]);
    const dlqs = Object.entries(all.template.Resources as Record<string, Cfn>)
      .filter(([, r]) => r.Type === 'AWS::SQS::Queue')
      .filter(([id]) => /DeadLetter/.test(id))
      .map(([id]) => id)
      .sort();
    expect(dlqs).toHaveLength(6);
    const watched = [...alarms.alarms.values()]
      .map((alarm) => resourceOf(all, alarm).Properties.Dimensions[0].Value['Fn::GetAtt'][0] as string)
      .sort();
    expect(watched).toEqual(dlqs);
  });
});
