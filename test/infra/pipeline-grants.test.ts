import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { keepsChunkIndex, readsPinnedModel } from '../../infra/constructs/functions.ts';
import type { SluiceFunction } from '../../infra/constructs/sluice-function.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { jobKindOf } from '../../shared/jobs/registry.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { ChunkIndex, IndexedDoc } from '../../shared/ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { buildStack } from './sluice-stack-fixture.ts';

/**
 * Stacks whose pipelines are all in one work pool have one work function, `Work`, for all of
 * them. Its grants, and finalize's, follow what those pipelines call, as a split stack's do:
 * - `s3:GetObjectVersion` on models/: only in-worker scoring reads its model by the version the
 *   run pinned (a hosted model is read by its endpoint, and its runs pin none);
 * - the runs table's BatchGetItem/BatchWriteItem on `Work`: only the chunk index (embed
 *   pipelines with incremental runs) and the prompt cache (generate pipelines);
 * - finalize's BatchGetItem: only the chunk index (documents a source no longer has); its
 *   BatchWriteItem: the chunk index, or a stage planned from an earlier one (score, recommend).
 * Before, every one-pool stack's `Work` had the batches and, with any score pipeline, the
 * versioned model reads, and every finalize both batches.
 */

const pipelinesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipelines');

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON has no static type here.
type Cfn = any;

interface Built {
  readonly stack: SluiceStack;
  readonly template: Cfn;
}

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId(construct.node.defaultChild as never);

/** Every (action, resource JSON) pair `fn`'s role policy allows. */
function grantsOf(built: Built, fn: SluiceFunction): { action: string; resource: string }[] {
  const policy = built.template.Resources[idOf(fn.role.node.findChild('DefaultPolicy'))];
  return (policy.Properties.PolicyDocument.Statement as Cfn[]).flatMap((s) =>
    ([s.Action].flat() as string[]).flatMap((action) =>
      ([s.Resource].flat() as Cfn[]).map((resource) => ({ action, resource: JSON.stringify(resource) })),
    ),
  );
}

/** The runs table actions `fn` may perform, sorted. */
function runsTableActions(built: Built, fn: SluiceFunction): string[] {
  const table = JSON.stringify({ 'Fn::GetAtt': [idOf(built.stack.runsTable.table), 'Arn'] });
  return grantsOf(built, fn)
    .filter((g) => g.resource === table)
    .map((g) => g.action)
    .sort();
}

/** Whether `fn` may read versions of objects under models/. */
const readsModelVersions = (built: Built, fn: SluiceFunction): boolean =>
  grantsOf(built, fn).some((g) => g.action === 's3:GetObjectVersion' && g.resource.includes('/models/*'));

const BATCHES = ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'];

let shipped: Record<'docs' | 'credit-risk' | 'generate-triage' | 'recommend', PipelineConfig>;
/** credit-risk on a serverless endpoint, credit-risk in the worker, docs without incremental runs. */
let serverless: PipelineConfig;
let inWorker: PipelineConfig;
let docsFull: PipelineConfig;
const stacks = new Map<string, Built>();

function build(pipelines: PipelineConfig[]): Built {
  const { stack } = buildStack({ pipelines });
  expect(stack.functions.workCompute, 'a one-pool stack').toBeUndefined();
  return { stack, template: Template.fromStack(stack).toJSON() };
}

const built = (name: string): Built => stacks.get(name)!;

beforeAll(async () => {
  const names = ['docs', 'credit-risk', 'generate-triage', 'recommend'] as const;
  const loaded = await Promise.all(names.map((name) => loadPipelineConfig(pipelinesDir, name)));
  shipped = Object.fromEntries(names.map((name, i) => [name, loaded[i]!])) as typeof shipped;
  const creditRisk = shipped['credit-risk'];
  const docs = shipped.docs;
  if (creditRisk.kind !== 'score' || docs.kind !== 'embed') throw new Error('unexpected shipped kinds');
  serverless = parsePipelineConfig({ ...creditRisk, model: { ...creditRisk.model, hosting: 'serverless' } });
  inWorker = parsePipelineConfig({ ...creditRisk, model: { ...creditRisk.model, hosting: 'in-worker' } });
  docsFull = parsePipelineConfig({ ...docs, incremental: { enabled: false } });
  for (const [name, pipelines] of [
    ['credit-risk serverless', [serverless]],
    ['credit-risk in-worker', [inWorker]],
    ['recommend', [shipped.recommend]],
    ['docs + credit-risk', [docs, creditRisk]],
    ['docs without incremental runs', [docsFull]],
    ['generate-triage', [shipped['generate-triage']]],
  ] as const)
    stacks.set(name, build([...pipelines]));
}, 240_000);

describe("a one-pool stack's Work reads model versions only for in-worker scoring", () => {
  it('gives no versioned model read to Work with credit-risk alone on a serverless endpoint', () => {
    const { stack } = built('credit-risk serverless');
    expect(readsModelVersions(built('credit-risk serverless'), stack.functions.work)).toBe(false);
    // It still reads models/ (feature statistics, embedding tables) at their current version.
    expect(
      grantsOf(built('credit-risk serverless'), stack.functions.work).some(
        (g) => g.action === 's3:GetObject' && g.resource.includes('/models/*'),
      ),
    ).toBe(true);
  });

  it('gives none to Work with docs and credit-risk on its instance endpoint (the default stack)', () => {
    expect(
      readsModelVersions(built('docs + credit-risk'), built('docs + credit-risk').stack.functions.work),
    ).toBe(false);
  });

  it('gives it to Work with credit-risk scored in the worker, and to no other function', () => {
    const b = built('credit-risk in-worker');
    const { plan, work, finalize, deadLetter } = b.stack.functions;
    expect(readsModelVersions(b, work)).toBe(true);
    for (const fn of [plan, finalize, deadLetter])
      expect(readsModelVersions(b, fn), fn.node.path).toBe(false);
  });

  it('follows the runs that pin a model version: the score job pins one exactly where the grant is given', async () => {
    // The grant's rule (readsPinnedModel) and the code that pins (the job kind's pinsOfRun)
    // must agree on every pipeline: a pin without the grant fails the units with AccessDenied.
    const store = new MemoryObjectStore();
    for (const config of [serverless, inWorker, shipped['credit-risk']]) {
      if (config.kind !== 'score') throw new Error('not a score pipeline');
      await store.put(config.model.modelKey, '{}');
      const pins = (await jobKindOf(config).pinsOfRun?.({ store }, config)) ?? {};
      expect(pins.modelPin !== undefined, `${config.name} (${config.model.hosting})`).toBe(
        readsPinnedModel(config),
      );
    }
    for (const config of [shipped.docs, shipped.recommend, shipped['generate-triage']])
      expect(readsPinnedModel(config), config.name).toBe(false);
  });
});

describe("a one-pool stack's runs table batches follow the chunk index and the prompt cache", () => {
  it('gives Work no batches without an incremental embed or a generate pipeline', () => {
    for (const name of [
      'credit-risk serverless',
      'credit-risk in-worker',
      'recommend',
      'docs without incremental runs',
    ]) {
      const b = built(name);
      expect(runsTableActions(b, b.stack.functions.work), name).toEqual([
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
      ]);
    }
  });

  it('follows the units that use the chunk index: an embed unit calls it exactly where the batches are granted', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-pipeline-grants-'));
    try {
      for (const enabled of [true, false]) {
        const config = pipelineConfig({ incremental: { enabled } });
        const calls: string[] = [];
        // Every ChunkIndex call is a runs-table batch deployed (DynamoChunkIndex).
        const index: ChunkIndex = {
          lookupDocs: async () => {
            calls.push('lookupDocs');
            return new Map<string, IndexedDoc>();
          },
          record: async () => {
            calls.push('record');
          },
        };
        const endpoint: EmbeddingEndpoint = {
          embed: async (inputs) => inputs.map(() => Array.from({ length: 16 }, () => 0.25)),
        };
        const store = new MemoryObjectStore();
        await store.put('incoming/docs/a.jsonl', jsonl([{ id: 'a', text: 'some words to embed' }]));
        const runs = new LocalRunStore(path.join(dir, String(enabled)));
        const queue = { sendUnits: async () => {}, requestFinalize: async () => {} };
        const { units } = await planRun({ store, runs, queue }, config, {
          runId: `r-20261207T000000Z-${enabled ? 'aaaaaa' : 'bbbbbb'}`,
          trigger: 'local',
          keys: ['incoming/docs/a.jsonl'],
          now: new Date('2026-12-07T00:00:00Z'),
        });
        const deps = {
          store,
          runs,
          queue,
          endpoint,
          tokenCounter: new EstimatingTokenCounter(),
          chunkIndex: index,
        };
        const outcome = await processUnit(deps, config, units[0]!, { isLastAttempt: false });
        expect(outcome.status).toBe('succeeded');
        expect(calls.length > 0, `incremental ${enabled}`).toBe(keepsChunkIndex(config));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives Work both batches with an incremental embed pipeline (chunk index) or a generate one (prompt cache)', () => {
    for (const name of ['docs + credit-risk', 'generate-triage']) {
      const b = built(name);
      expect(runsTableActions(b, b.stack.functions.work), name).toEqual(
        ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', ...BATCHES].sort(),
      );
    }
  });

  it("gives finalize BatchGetItem only for the chunk index, BatchWriteItem for it or a later stage's units", () => {
    const finalizeOf = (name: string) => runsTableActions(built(name), built(name).stack.functions.finalize);
    const base = ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'];
    // Incremental docs: the chunk index's lookups and forgets of documents a source lost.
    expect(finalizeOf('docs + credit-risk')).toEqual([...base, ...BATCHES].sort());
    // Score (the score stage after a fit, segment statistics) and recommend (similarity after
    // ingest): the next stage's units are batch-written; no chunk index is read.
    for (const name of ['credit-risk serverless', 'credit-risk in-worker', 'recommend'])
      expect(finalizeOf(name), name).toEqual([...base, 'dynamodb:BatchWriteItem'].sort());
    // One stage and no chunk index: no batch at all.
    for (const name of ['docs without incremental runs', 'generate-triage'])
      expect(finalizeOf(name), name).toEqual(base);
  });

  it("leaves plan's and dead-letter's as they are: plan batch-writes a run's units in every stack, dead-letter never batches", () => {
    for (const [name, b] of stacks) {
      const { plan, deadLetter } = b.stack.functions;
      expect(runsTableActions(b, plan), name).toContain('dynamodb:BatchWriteItem');
      expect(runsTableActions(b, plan), name).not.toContain('dynamodb:BatchGetItem');
      expect(runsTableActions(b, deadLetter), name).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    }
  });
});
