import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import {
  type EmbedPipelineConfig as PipelineConfig,
  parseEmbedPipelineConfig as parsePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import { buildStack, bundledPipelines, loadDocsPipeline } from './sluice-stack-fixture.ts';

let docs: PipelineConfig;
let notes: PipelineConfig;
let stack: SluiceStack;
let template: Template;

/** A second, unscheduled pipeline that shares the docs endpoint and needs bigger workers. */
function notesPipeline(docs: PipelineConfig): PipelineConfig {
  const { schedule: _unscheduled, ...rest } = docs;
  return parsePipelineConfig({
    ...rest,
    name: 'notes',
    batching: { ...docs.batching, maxBatchTokens: 32768 },
    workers: { maxConcurrency: 20, timeoutSeconds: 900, memoryMiB: 4096, maxReceiveCount: 3 },
  });
}

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId(construct.node.defaultChild as never);
const propertiesOf = (construct: IConstruct) => template.toJSON().Resources[idOf(construct)].Properties;

beforeAll(async () => {
  docs = await loadDocsPipeline();
  notes = notesPipeline(docs);
  stack = buildStack({
    pipelines: [docs, notes],
    embeddingInstanceType: 'ml.g5.2xlarge',
    hfModelId: 'BAAI/bge-base-en-v1.5',
    dataRemovalPolicy: undefined,
  }).stack;
  template = Template.fromStack(stack);
});

describe('SluiceStack serving several pipelines', () => {
  it('sizes the shared worker for the most demanding pipeline', () => {
    expect(propertiesOf(stack.functions.work.function)).toMatchObject({ Timeout: 900, MemorySize: 4096 });
    expect(propertiesOf(stack.queues.work.queue).VisibilityTimeout).toBe(6 * 900);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      ScalingConfig: { MaximumConcurrency: 20 },
    });
    expect(propertiesOf(stack.queues.work.queue).RedrivePolicy.maxReceiveCount).toBe(
      Math.max(docs.workers.maxReceiveCount, notes.workers.maxReceiveCount),
    );
  });

  it('deploys one endpoint for pipelines that share an endpoint name, on the context instance type', () => {
    template.resourceCountIs('AWS::SageMaker::Endpoint', 1);
    template.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [Match.objectLike({ InstanceType: 'ml.g5.2xlarge' })],
    });
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        Environment: { HF_MODEL_ID: 'BAAI/bge-base-en-v1.5', MAX_BATCH_TOKENS: '32768' },
      },
    });
  });

  it('schedules only the pipelines that have a schedule', () => {
    const runs = Object.values(template.findResources('AWS::Scheduler::Schedule')).filter(
      (schedule) => schedule.Properties.Target.Input !== undefined,
    );
    expect(runs).toHaveLength(1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: { Input: Match.stringLikeRegexp('"pipeline":"docs"') },
    });
  });

  it('projects a pipeline partition for every pipeline', () => {
    const tables = Object.values(template.findResources('AWS::Glue::Table')).filter(
      (table) => table.Properties.TableInput.TableType === 'EXTERNAL_TABLE',
    );
    // embeddings, rejects, runs, sources, scores, segment_stats, generations, recommendations:
    // every table of the house is declared, whatever kinds the stack's pipelines are.
    expect(tables).toHaveLength(8);
    for (const table of tables) {
      expect(table.Properties.TableInput.Parameters['projection.pipeline.values']).toBe('docs,notes');
    }
  });

  it('passes every pipeline config to the functions, in their code, with the model sluice:hfModelId serves', () => {
    // The workers record and fingerprint endpoint.model: it must be the model the endpoint serves.
    const served = (config: PipelineConfig) => ({
      ...config,
      endpoint: { ...config.endpoint, model: 'BAAI/bge-base-en-v1.5' },
    });
    for (const fn of [stack.functions.plan, stack.functions.work, stack.functions.deadLetter]) {
      expect(bundledPipelines(fn)).toEqual([served(docs), served(notes)]);
    }
  });

  it('keeps the buckets and the runs table when the stack is deleted, by default', () => {
    for (const construct of [stack.storage.bucket, stack.storage.accessLogsBucket, stack.runsTable.table]) {
      expect(template.toJSON().Resources[idOf(construct)].DeletionPolicy).toBe('Retain');
    }
  });
});
