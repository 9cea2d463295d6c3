import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { RulesChatBackend } from '../../cli/model-server/rules-chat-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { XgboostJsonBackend } from '../../cli/model-server/xgboost-backend.ts';
import { createCapacitySweeperHandler } from '../../functions/capacity-sweeper.ts';
import { type AwsClients, createAdapters, createAwsClients } from '../../functions/config/adapters.ts';
import { type Environment, loadEnvironment } from '../../functions/config/environment.ts';
import { createDeadLetterHandler } from '../../functions/dead-letter.ts';
import { createFinalizeHandler } from '../../functions/finalize.ts';
import type { ObservedFunction } from '../../functions/observability.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { createWorkHandler } from '../../functions/work.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { aLambdaContext, testObservability } from '../functions/factories.ts';
import {
  ACCOUNT,
  DeployedNames,
  type IamRequest,
  iamPatternMatches,
  iamRequestsOf,
} from '../support/iam-policies.ts';
import { toLambdaRecord } from '../support/lambda-sqs-record.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
  startFauxqsServer,
} from '../support/local-aws.ts';
import {
  type LocalEventSourceMappings,
  startLocalEventSourceMappings,
} from '../support/local-event-source-mappings.ts';
import { createRecommendationsTable } from '../support/recommendations-table.ts';
import { type RecordedCall, SdkCallRecorder } from '../support/sdk-call-recorder.ts';
import { playVersionedBucket } from '../support/versioned-bucket.ts';
import { buildStack, loadCreditRiskPipeline, loadDocsPipeline } from './sluice-stack-fixture.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const REPORT = path.resolve(here, '../../.tmp/iam-check.json');
/**
 * The deployed function whose role signs a call: a handler's step, or `work-compute`, the
 * work handler deployed a second time as WorkCompute for the compute pool (issue 14).
 */
type Step = ObservedFunction | 'work-compute';
const STEPS: readonly Step[] = [
  'plan',
  'work',
  'work-compute',
  'finalize',
  'dead-letter',
  'capacity-sweeper',
];
/** A recorded call, with the function whose role signs it. */
type Call = Omit<RecordedCall, 'fn'> & { readonly fn: Step };
/** Documents of the docs drop, dropped twice: a second run over the same text carries every chunk. */
const DROPPED_DOCS = 60;
/** The IAM requests of a call, whichever function made it. */
const requestsOf = (call: Call): IamRequest[] => iamRequestsOf({ ...call, fn: 'work' });

// biome-ignore lint/suspicious/noExplicitAny: IAM policy documents are JSON with no static type here.
type PolicyDocument = { Version?: string; Statement: any[] };

/**
 * Granted actions no recorded call uses, each with why it stays (docs/infra.md,
 * "Permissions the calls do not show"). A grant that is unused and not listed here fails
 * the check: remove it from the role, or justify it here and in the docs.
 */
const JUSTIFIED_UNUSED: readonly {
  fn: Step | '*';
  action: string;
  resource?: string;
  reason: string;
  /** Used in some drives and not others (it depends on the order the units ran in): never stale. */
  sometimes?: true;
}[] = [
  { fn: '*', action: 'logs:CreateLogStream', reason: 'the Lambda runtime writes the function log' },
  { fn: '*', action: 'logs:PutLogEvents', reason: 'the Lambda runtime writes the function log' },
  // The consumed queue's grant (SqsEventSource): Lambda's poller signs with the function's role.
  { fn: '*', action: 'sqs:ReceiveMessage', reason: 'the event source mapping polls the consumed queue' },
  { fn: '*', action: 'sqs:DeleteMessage', reason: 'the event source mapping deletes handled messages' },
  { fn: '*', action: 'sqs:GetQueueAttributes', reason: 'the event source mapping reads the consumed queue' },
  {
    fn: 'dead-letter',
    action: 'sqs:ChangeMessageVisibility',
    reason: 'a dead letter that fails comes back after its backoff; none fails in this drive',
  },
  {
    fn: 'dead-letter',
    action: 'sqs:GetQueueUrl',
    reason: 'looked up when a dead letter fails (its backoff); none fails in this drive',
  },
  // The drive plays the stack's versioned bucket (test/support/versioned-bucket.ts): a
  // dropped file is headed for its VersionId and read by it (s3:GetObjectVersion, recorded).
  {
    fn: '*',
    action: 's3:GetObjectVersion',
    resource: '/datasets/*',
    reason:
      'a key named under datasets/ is read by the VersionId its head gave; prefix runs pin the listed ETag',
  },
  {
    fn: 'work',
    action: 's3:GetObject',
    resource: '/incoming/*',
    reason:
      'a scheduled run over a prefix under incoming/ pins the listed ETag (If-Match); this drive lists datasets/ only',
  },
  {
    fn: 'work',
    action: 's3:GetObject',
    resource: '/runs/docs/*',
    reason:
      'an embed unit retried after it recorded its entries, or one finding another unit’s entry of the run, reads the entries they replaced (none retries in this drive)',
  },
  {
    fn: '*',
    action: 's3:AbortMultipartUpload',
    reason: 'a part upload that fails or is abandoned is aborted (none fails in this drive)',
  },
  {
    fn: '*',
    action: 's3:ListBucket',
    reason: 'makes a read of a missing key a 404 (absent) rather than a 403; the adapters rely on it',
  },
  {
    fn: '*',
    action: 's3:*',
    resource: '/staging/*',
    reason: 're-staged parts of big gzip sources (none in this drive)',
  },
  {
    fn: 'finalize',
    action: 'sqs:SendMessage',
    resource: 'FinalizeQueue',
    reason: 'a score stage with no units asks for finalize at once',
  },
  {
    fn: 'work-compute',
    action: 's3:GetObject',
    resource: '/results/*',
    reason: 'a completion that lost to failed, or a longer attempt, takes its parts back (head, empty put)',
  },
  // The compute pool's checkpoint hand-off (a continuation stored, then sent to its own queue):
  // its inputs here are CSV, whose units stop only between files, and each is one file.
  {
    fn: 'work-compute',
    action: 'dynamodb:PutItem',
    reason:
      'a unit near the time limit stores its continuation; this drive has no mid-file checkpoint of a CSV',
  },
  {
    fn: 'work-compute',
    action: 'sqs:SendMessage',
    resource: 'WorkComputeQueue',
    reason: 'a unit near the time limit hands the rest on through the compute queue; none does in this drive',
  },
  {
    fn: 'work-compute',
    action: 's3:GetObject',
    resource: '/incoming/*',
    reason:
      'a scheduled run over a prefix under incoming/ pins the listed ETag (If-Match); the dropped log is read by VersionId',
  },
  {
    fn: 'dead-letter',
    action: 's3:PutObject',
    resource: '/results/*',
    reason: "an empty part replaces an earlier attempt's part; the lost unit of this drive wrote none",
  },
  {
    fn: 'plan',
    action: 'sqs:SendMessage',
    resource: 'FinalizeQueue',
    reason: 'a run with no units asks for finalize at once',
  },
  {
    fn: 'finalize',
    action: 'dynamodb:BatchGetItem',
    reason:
      "chunk index lookups of removed documents and of duplicated ids' kept records (whether the drive's finalize makes one depends on its units' order: a clean clone's CI used it once)",
    sometimes: true,
  },
  {
    fn: 'dead-letter',
    action: 'dynamodb:GetItem',
    reason: 'getRun when a dead letter may have stranded its run',
  },
  // Run-scoped capacity (issue 14). The local model server's emulated control plane starts
  // each component with one serving copy, which is all a credit-risk run asks for.
  {
    fn: 'plan',
    action: 'sagemaker:UpdateInferenceComponentRuntimeConfig',
    resource: 'inference-component/sluice-credit-risk-model',
    reason: "raises credit-risk's copies when a run needs more than serve; its one copy is enough here",
  },
  {
    fn: 'capacity-sweeper',
    action: 'sagemaker:UpdateInferenceComponentRuntimeConfig',
    resource: 'inference-component/sluice-credit-risk-model',
    reason: "finalize scaled credit-risk's component in at release, so the sweeps find it at 0",
  },
  // Docs runs are incremental: their copies are raised on demand, by the sweeper (docs/capacity.md).
  {
    fn: 'plan',
    action: 'sagemaker:DescribeInferenceComponent',
    resource: 'inference-component/sluice-docs-embed-model',
    reason:
      'raises the copies of a run that is not incremental (or of a retried plan whose lease is needed already); docs runs are incremental',
  },
  {
    fn: 'plan',
    action: 'sagemaker:UpdateInferenceComponentRuntimeConfig',
    resource: 'inference-component/sluice-docs-embed-model',
    reason:
      'raises the copies of a run that is not incremental (or of a retried plan whose lease is needed already); docs runs are incremental',
  },
  // The generate pipeline's LLM component (issue 18), like credit-risk's: one serving copy is all its run asks for.
  {
    fn: 'plan',
    action: 'sagemaker:UpdateInferenceComponentRuntimeConfig',
    resource: 'inference-component/sluice-generate-triage-model',
    reason: "raises the LLM's copies when a run needs more than serve; its one copy is enough here",
  },
  {
    fn: 'capacity-sweeper',
    action: 'sagemaker:UpdateInferenceComponentRuntimeConfig',
    resource: 'inference-component/sluice-generate-triage-model',
    reason: "finalize scaled the LLM's component in at release, so the sweeps find it at 0",
  },
];

describe('IAM check: every AWS call the handlers make is allowed by the role the stack gives its function', () => {
  let stack: SluiceStack;
  let names: DeployedNames;
  let template: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
  let fauxqs: LocalAwsServer;
  let dynalite: LocalAwsServer;
  let models: { embed: ModelServer; score: ModelServer; chat: ModelServer; router: Server };
  let env: Environment;
  /** Each function's environment: plan's and the sweeper's carry the work mapping's id, as the stack sets it. */
  const envByStep = new Map<Step, Environment>();
  /** The work queue's event source mapping (GetEventSourceMapping, UpdateEventSourceMapping), by its deployed UUID. */
  let mappings: LocalEventSourceMappings;
  const recorder = new SdkCallRecorder();
  /** WorkCompute's clients record here (as `work`, the handler they run), reported as `work-compute`. */
  const computeRecorder = new SdkCallRecorder();
  /** Every recorded call, each with the function whose role signs it. */
  const calls = (): Call[] => [
    ...recorder.calls,
    ...computeRecorder.calls.map((call): Call => ({ ...call, fn: 'work-compute' })),
  ];
  const clientsByStep = new Map<Step, AwsClients>();
  let driver: { s3: S3Client; sqs: SQSClient };
  /** Local queue URLs by logical id. */
  const urls = new Map<string, string>();
  /**
   * The re-drop of the docs drop: the docs runs that had finished before it, the runs it
   * added (the re-drop's alone), and Work's calls while it ran.
   */
  let redrop: { earlier: RunSummary[]; runs: RunSummary[]; workCalls: RecordedCall[] };

  const idOf = (construct: IConstruct): string =>
    Stack.of(construct).getLogicalId(construct.node.defaultChild as never);

  beforeAll(async () => {
    // The default deployment: an incremental embed pipeline and a score pipeline.
    const docs = await loadDocsPipeline();
    const creditRisk = await loadCreditRiskPipeline();
    // The same model scored in the worker (model.hosting in-worker): no endpoint, the JSON
    // model read from models/ (the feature statistics credit-risk's fit run stores).
    const inWorker = parsePipelineConfig({
      ...creditRisk,
      name: 'credit-risk-local',
      schedule: undefined,
      model: { ...creditRisk.model, endpointName: 'sluice-credit-risk-local', hosting: 'in-worker' },
    });
    // A recommend pipeline: its stages' staging files and the users' lists (recommendations table).
    const recommend = await loadPipelineConfig(path.join(repoRoot, 'pipelines'), 'recommend');
    // A generate pipeline on its LLM endpoint (an ungated model, as deployed), answered by the rules-chat backend.
    const triage = parsePipelineConfig({
      ...(await loadPipelineConfig(path.join(repoRoot, 'pipelines'), 'generate-triage')),
      model: 'Qwen/Qwen2.5-7B-Instruct',
    });
    stack = buildStack({ pipelines: [docs, creditRisk, inWorker, recommend, triage] }).stack;
    template = Template.fromStack(stack).toJSON() as typeof template;
    names = new DeployedNames(template);

    let embed: ModelServer;
    let score: ModelServer;
    let chat: ModelServer;
    [fauxqs, dynalite, embed, score, chat] = await Promise.all([
      startFauxqsServer(),
      startDynalite(),
      startModelServer({ backend: new HashEmbedder(docs.endpoint.dimension) }),
      startModelServer({
        backend: XgboostJsonBackend.fromFile(path.join(repoRoot, 'pipelines', creditRisk.model.modelKey)),
      }),
      startModelServer({ backend: new RulesChatBackend() }),
    ]);
    const llmEndpoint = triage.kind === 'generate' ? triage.endpoint.name : '';
    models = {
      embed,
      score,
      chat,
      router: await routeEndpoints(
        {
          [creditRisk.model.endpointName!]: score,
          [inferenceComponentNameOf(creditRisk.model.endpointName!)]: score,
          [llmEndpoint]: chat,
          [inferenceComponentNameOf(llmEndpoint)]: chat,
        },
        embed,
      ),
    };
    const dynamo = new DynamoDBClient(localClientConfig(dynalite.endpoint));
    await createRunsTable(dynamo, names.nameOf(idOf(stack.runsTable.table)));
    await createRecommendationsTable(dynamo, names.nameOf(idOf(stack.recommendationsTable!.table)));
    dynamo.destroy();

    // The stack's queues, named as the IAM check names them, with the stack's redrive wiring
    // (two deliveries, not five, and a 1 s visibility timeout, so the drive is short).
    driver = {
      s3: new S3Client({ ...localClientConfig(fauxqs.endpoint), forcePathStyle: true }),
      sqs: new SQSClient(localClientConfig(fauxqs.endpoint)),
    };
    const create = async (queue: IConstruct, deadLetters?: IConstruct) => {
      const id = idOf(queue);
      const attributes: Record<string, string> = { VisibilityTimeout: '1' };
      if (deadLetters) {
        const arn = (
          await driver.sqs.send(
            new GetQueueAttributesCommand({
              QueueUrl: urls.get(idOf(deadLetters)),
              AttributeNames: ['QueueArn'],
            }),
          )
        ).Attributes!.QueueArn!;
        attributes.RedrivePolicy = JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: 2 });
      }
      const out = await driver.sqs.send(
        new CreateQueueCommand({ QueueName: names.nameOf(id), Attributes: attributes }),
      );
      urls.set(id, out.QueueUrl!);
    };
    const { queues } = stack;
    await create(queues.workDeadLetterOverflow);
    for (const q of [queues.ingest, queues.finalize]) await create(q.deadLetterQueue);
    await create(queues.work.deadLetterQueue, queues.workDeadLetterOverflow);
    // The compute queue of the split stack (issue 14), wired as the work queue is.
    const compute = queues.workCompute!;
    await create(compute.deadLetterOverflow);
    await create(compute.deadLetterQueue, compute.deadLetterOverflow);
    for (const q of [queues.ingest, queues.work, queues.finalize, compute])
      await create(q.queue, q.deadLetterQueue);
    await driver.s3.send(new CreateBucketCommand({ Bucket: names.nameOf(idOf(stack.storage.bucket)) }));

    const vars = {
      SLUICE_BUCKET: names.nameOf(idOf(stack.storage.bucket)),
      SLUICE_RUNS_TABLE: names.nameOf(idOf(stack.runsTable.table)),
      SLUICE_WORK_QUEUE_URL: urls.get(idOf(queues.work.queue)),
      SLUICE_FINALIZE_QUEUE_URL: urls.get(idOf(queues.finalize.queue)),
      SLUICE_PIPELINES: JSON.stringify(stack.pipelines),
      SLUICE_SAGEMAKER_ENDPOINT_URL: `http://127.0.0.1:${(models.router.address() as AddressInfo).port}`,
    };
    const computeQueueUrl = urls.get(idOf(compute.queue))!;
    env = loadEnvironment({ ...vars, SLUICE_WORK_COMPUTE_QUEUE_URL: computeQueueUrl });
    // The work queue's mapping, at the limit the stack deploys; its UUID is what a function's
    // SLUICE_WORK_EVENT_SOURCE_ID resolves to, and what its grant names.
    const mappingIds = Object.entries(template.Resources)
      .filter(([, r]) => r.Type === 'AWS::Lambda::EventSourceMapping')
      .filter(([, r]) =>
        JSON.stringify(r.Properties?.FunctionName).includes(idOf(stack.functions.work.function)),
      )
      .map(([id]) => id);
    expect(mappingIds).toHaveLength(1);
    // Deployed at the stack's ceiling, then where the sweeper leaves it between runs: the
    // floor of 2, so that the drive's first run raises it (plan) and the last sweep lowers it.
    mappings = await startLocalEventSourceMappings({ [names.resolve({ Ref: mappingIds[0] })]: 2 });
    for (const step of STEPS) {
      const variables = template.Resources[idOf(functionOf(step).function)]?.Properties?.Environment as
        | { Variables?: Record<string, unknown> }
        | undefined;
      // Variables the stack sets on some functions only, resolved to their deployed values.
      const own = Object.fromEntries(
        ['SLUICE_WORK_EVENT_SOURCE_ID', 'SLUICE_RECOMMENDATIONS_TABLE'].flatMap((name) => {
          const value = variables?.Variables?.[name];
          return value === undefined ? [] : [[name, names.resolve(value) as string]];
        }),
      );
      // The compute queue's URL where the stack sets it (plan, both work functions, finalize,
      // dead-letter), and only there: the sweeper runs without it, as deployed.
      const computeUrl = variables?.Variables?.SLUICE_WORK_COMPUTE_QUEUE_URL;
      if (computeUrl !== undefined) expect(computeUrl).toEqual({ Ref: idOf(compute.queue) });
      envByStep.set(
        step,
        loadEnvironment(
          {
            ...vars,
            ...own,
            ...(computeUrl === undefined ? {} : { SLUICE_WORK_COMPUTE_QUEUE_URL: computeQueueUrl }),
          },
          { sendsUnits: step !== 'capacity-sweeper' },
        ),
      );
    }
    // One set of clients per function, as each Lambda has its own: each records as its function.
    for (const step of STEPS) {
      const clients = createAwsClients(envByStep.get(step)!, {
        s3: { ...localClientConfig(fauxqs.endpoint), forcePathStyle: true },
        sqs: localClientConfig(fauxqs.endpoint),
        dynamo: localClientConfig(dynalite.endpoint),
        sagemaker: { region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } },
        lambda: localClientConfig(mappings.endpoint),
      });
      if (step === 'work-compute') computeRecorder.attach('work', clients);
      else recorder.attach(step, clients);
      playVersionedBucket(clients.s3);
      clientsByStep.set(step, clients);
    }
    await drive();
  }, 540_000);

  afterAll(async () => {
    for (const clients of clientsByStep.values())
      for (const client of Object.values(clients)) client.destroy();
    driver?.s3.destroy();
    driver?.sqs.destroy();
    models?.router.close();
    await Promise.all([
      fauxqs?.stop(),
      dynalite?.stop(),
      mappings?.stop(),
      models?.embed.close(),
      models?.score.close(),
      models?.chat.close(),
    ]);
  });

  /**
   * The deployed flow end to end, through each function's own recorded clients: a drop and
   * a scheduled tick planned, their units worked (the first deliveries near the time limit,
   * so they checkpoint and hand the rest on through the work queue), finalized; the drop
   * again, unchanged (its vectors read back from the first run's part); a message
   * each handler cannot read (failed, postponed by its backoff, dead-lettered); and a unit
   * whose worker "died", taken from the work queue to its DLQ, marked failed by dead-letter.
   */
  async function drive(): Promise<void> {
    const adapters = (step: Step) =>
      createAdapters(envByStep.get(step)!, clientsByStep.get(step)!, {
        sleep: (ms) => delay(Math.min(ms, 5)),
        redelivery: { baseSeconds: 1, maxSeconds: 1 },
      });
    const plan = createPlanHandler(adapters('plan'), testObservability());
    const work = createWorkHandler(adapters('work'), testObservability());
    const workCompute = createWorkHandler(adapters('work-compute'), testObservability());
    const finalize = createFinalizeHandler(adapters('finalize'), testObservability());
    const deadLetter = createDeadLetterHandler(adapters('dead-letter'), testObservability());
    const { queues } = stack;
    const url = (queue: IConstruct) => urls.get(idOf(queue))!;

    await putSource('incoming/docs/drop.jsonl', DROPPED_DOCS);
    await putSource('datasets/docs/nightly.jsonl', 30);
    // Score: the embedding table the features name, no fitted statistics (a fit run first), customers.
    for (const [key, file] of [
      [
        'models/credit-risk/occupation-embedding.json',
        'pipelines/models/credit-risk/occupation-embedding.json',
      ],
      ['datasets/customers/2026-12.csv', 'events/data/credit-sample.csv'],
      // What ModelFiles uploads for the in-worker pipeline.
      ['models/credit-risk/model.json', 'pipelines/models/credit-risk/model.json'],
      // A short interaction log (its first users), dropped for the recommend pipeline.
      ['incoming/recommend/interactions.csv', 'events/data/interactions-sample.csv'],
      // Support tickets, dropped for the generate pipeline.
      ['incoming/generate-triage/tickets.jsonl', 'events/data/tickets-sample.jsonl'],
    ] as const) {
      const body = readFileSync(path.join(repoRoot, file));
      const short = key.startsWith('incoming/recommend/')
        ? `${body.toString('utf8').split('\n').slice(0, 600).join('\n')}\n`
        : body;
      await driver.s3.send(new PutObjectCommand({ Bucket: env.bucket, Key: key, Body: short }));
    }
    await send(url(queues.ingest.queue), {
      kind: 'scheduled-run',
      pipeline: 'credit-risk',
      prefix: 'datasets/customers/',
      scheduledTime: '2026-12-07T02:00:00Z',
    });
    await send(url(queues.ingest.queue), notification('incoming/docs/drop.jsonl'));
    await send(url(queues.ingest.queue), notification('incoming/recommend/interactions.csv'));
    await send(url(queues.ingest.queue), notification('incoming/generate-triage/tickets.jsonl'));
    await send(url(queues.ingest.queue), {
      kind: 'scheduled-run',
      pipeline: 'docs',
      prefix: 'datasets/docs/',
      scheduledTime: '2026-12-07T03:00:00Z',
    });
    const compute = queues.workCompute!;
    for (const queue of [queues.ingest.queue, queues.work.queue, compute.queue, queues.finalize.queue])
      await send(url(queue), 'not a message any handler can read');

    let nearTimeLimit = 2;
    const workContext = (): Context => {
      const context = aLambdaContext('sluice-work');
      if (nearTimeLimit-- <= 0) return context;
      // Less than the checkpoint margin (a quarter of the 600 s timeout) but time enough to hand on.
      return { ...context, getRemainingTimeInMillis: () => 20_000 };
    };
    const settle = async () => {
      let idle = 0;
      const deadline = Date.now() + 240_000;
      while (idle < 3) {
        if (Date.now() > deadline) throw new Error('the drive did not settle in 4 minutes');
        const moved =
          (await deliver(url(queues.ingest.queue), (e, c) => plan(e, c) as Promise<SQSBatchResponse>)) +
          (await deliver(url(queues.work.queue), (e) => work(e, workContext()))) +
          (await deliver(url(compute.queue), (e) => workCompute(e, aLambdaContext('sluice-work-compute')))) +
          (await deliver(url(queues.finalize.queue), finalize)) +
          (await deliver(url(queues.work.deadLetterQueue), deadLetter)) +
          (await deliver(url(compute.deadLetterQueue), deadLetter));
        idle = moved === 0 ? idle + 1 : 0;
        // Failed messages come back after their 1 s backoff.
        if (moved === 0) await delay(600);
      }
    };
    await settle();
    // The drop again, unchanged, once its first run finalized: every chunk is carried, its
    // vector read back from the first run's embeddings part (HeadObject, ranged GetObjects
    // under results/), and no endpoint is called. It settles with the in-worker run below,
    // whose units go to WorkCompute, so Work's calls meanwhile are the re-drop's.
    const docsRunsBefore = await docsSummaries();
    const workCallsBefore = recorder.calls.length;
    await putSource('incoming/docs/drop.jsonl', DROPPED_DOCS);
    await send(url(queues.ingest.queue), notification('incoming/docs/drop.jsonl'));
    // The in-worker pipeline, once credit-risk's fit run has stored the statistics: a
    // scoring run whose units evaluate the JSON model in the worker.
    await send(url(queues.ingest.queue), {
      kind: 'scheduled-run',
      pipeline: 'credit-risk-local',
      prefix: 'datasets/customers/',
      scheduledTime: '2026-12-07T04:00:00Z',
    });
    await settle();
    const docsRunsAfter = await docsSummaries();
    redrop = {
      earlier: [...docsRunsBefore.values()],
      runs: [...docsRunsAfter].filter(([runId]) => !docsRunsBefore.has(runId)).map(([, summary]) => summary),
      workCalls: recorder.calls.slice(workCallsBefore).filter((call) => call.fn === 'work'),
    };

    // A worker that dies on its unit's last delivery: the unit's message goes to the work DLQ.
    await putSource('incoming/docs/lost.jsonl', 5);
    await send(url(queues.ingest.queue), notification('incoming/docs/lost.jsonl'));
    await deliver(url(queues.ingest.queue), (e, c) => plan(e, c) as Promise<SQSBatchResponse>);
    const units = await receiveAll(url(queues.work.queue));
    expect(units.length).toBeGreaterThan(0);
    for (const unit of units) await send(url(queues.work.deadLetterQueue), unit.Body!);
    await settle();
    // And one of the compute pool (an in-worker scoring run): its units go from the compute
    // queue to the compute DLQ, which dead-letter consumes too.
    await send(url(queues.ingest.queue), {
      kind: 'scheduled-run',
      pipeline: 'credit-risk-local',
      prefix: 'datasets/customers/',
      scheduledTime: '2026-12-07T05:00:00Z',
    });
    await deliver(url(queues.ingest.queue), (e, c) => plan(e, c) as Promise<SQSBatchResponse>);
    const computeUnits = await receiveAll(url(compute.queue));
    expect(computeUnits.length).toBeGreaterThan(0);
    for (const unit of computeUnits) await send(url(compute.deadLetterQueue), unit.Body!);
    await settle();

    // The capacity sweeper, as its schedule runs it, hours after a run whose units were
    // planned and then lost without a trace (its lease leaks): the sweeper releases the
    // stale lease and scales in the components whose cooldown is over.
    await putSource('incoming/docs/stalled.jsonl', 5);
    await send(url(queues.ingest.queue), notification('incoming/docs/stalled.jsonl'));
    await deliver(url(queues.ingest.queue), (e, c) => plan(e, c) as Promise<SQSBatchResponse>);
    const stalled = await receiveAll(url(queues.work.queue));
    expect(stalled.length).toBeGreaterThan(0);
    // Docs runs are incremental: plan raised no copies (docs/capacity.md, "Copies on demand").
    // The one unit that ran before the rest were lost asked for them (work marks the lease),
    // and the sweeper's next pass raises them.
    await send(url(queues.work.queue), stalled[0]!.Body!);
    await deliver(url(queues.work.queue), (e) => work(e, workContext()));
    let clock = Date.now();
    const sweep = createCapacitySweeperHandler(adapters('capacity-sweeper'), {
      ...testObservability(),
      now: () => new Date(clock),
    });
    await sweep({}, aLambdaContext('sluice-capacity-sweeper'));
    // Then a week later: copies at 0 past the cooldown that release started, and the
    // released leases (older than the sweeper keeps them) pruned.
    clock += 3 * 3600_000;
    await sweep({}, aLambdaContext('sluice-capacity-sweeper'));
    clock += 8 * 24 * 3600_000;
    await sweep({}, aLambdaContext('sluice-capacity-sweeper'));
  }

  /** The summaries of the docs runs that finished, by run id (read by the driver, so not recorded). */
  async function docsSummaries(): Promise<Map<string, RunSummary>> {
    const out = new Map<string, RunSummary>();
    let token: string | undefined;
    do {
      const page = await driver.s3.send(
        new ListObjectsV2Command({ Bucket: env.bucket, Prefix: 'runs/docs/', ContinuationToken: token }),
      );
      for (const { Key: key } of page.Contents ?? []) {
        if (!key?.endsWith('/summary.json')) continue;
        const body = await driver.s3.send(new GetObjectCommand({ Bucket: env.bucket, Key: key }));
        const summary = JSON.parse(await body.Body!.transformToString()) as RunSummary;
        out.set(summary.runId, summary);
      }
      token = page.NextContinuationToken;
    } while (token !== undefined);
    return out;
  }

  async function putSource(key: string, documents: number): Promise<void> {
    const lines = Array.from({ length: documents }, (_, i) =>
      JSON.stringify({
        id: `${key}-${i}`,
        text: `document ${i} of ${key}: ${'tokens and words '.repeat(120)}`,
      }),
    );
    await driver.s3.send(
      new PutObjectCommand({ Bucket: env.bucket, Key: key, Body: `${lines.join('\n')}\n` }),
    );
  }

  function notification(key: string) {
    return {
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: 'us-east-1',
          eventTime: new Date().toISOString(),
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: env.bucket }, object: { key } },
        },
      ],
    };
  }

  async function send(queueUrl: string, body: unknown): Promise<void> {
    await driver.sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    );
  }

  async function receiveAll(queueUrl: string): Promise<Message[]> {
    const out = await driver.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    const messages = out.Messages ?? [];
    if (messages.length > 0)
      await driver.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    return messages;
  }

  /** What Lambda's poller does: receive, hand the batch over as an SQS event, delete what succeeded. */
  async function deliver(
    queueUrl: string,
    handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>,
  ): Promise<number> {
    let delivered = 0;
    for (;;) {
      const out = await driver.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          MessageSystemAttributeNames: ['All'],
        }),
      );
      const messages = out.Messages ?? [];
      if (messages.length === 0) return delivered;
      const name = queueUrl.split('/').at(-1)!;
      const response = await handler(
        { Records: messages.map((m) => toLambdaRecord(m, name)) },
        aLambdaContext(name),
      );
      const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
      const done = messages.filter((m) => !failed.has(m.MessageId!));
      if (done.length > 0)
        await driver.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      delivered += messages.length;
    }
  }

  /** The identity policies of a function's role, resolved to concrete ARNs. */
  function rolePolicies(step: Step): PolicyDocument[] {
    const fn = functionOf(step);
    const roleId = idOf(fn.role);
    const attached = Object.values(template.Resources).filter(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        ((r.Properties?.Roles ?? []) as unknown[]).some(
          (role) => JSON.stringify(role) === JSON.stringify({ Ref: roleId }),
        ),
    );
    const inline = (template.Resources[roleId]?.Properties?.Policies as { PolicyDocument: unknown }[]) ?? [];
    const managed = template.Resources[roleId]?.Properties?.ManagedPolicyArns as unknown[] | undefined;
    expect(managed ?? [], `${step} role has no managed policy`).toEqual([]);
    return [...attached.map((p) => p.Properties?.PolicyDocument), ...inline.map((p) => p.PolicyDocument)].map(
      (document) => names.resolve(document) as PolicyDocument,
    );
  }

  function functionOf(step: Step) {
    const { plan, work, workCompute, finalize, deadLetter } = stack.functions;
    const sweeper = stack.capacitySweeper!.function;
    const byStep = {
      plan,
      work,
      'work-compute': workCompute!,
      finalize,
      'dead-letter': deadLetter,
      'capacity-sweeper': sweeper,
    };
    return byStep[step];
  }

  /** The resource policy of the bucket or queue a request names (TLS-only denies, S3's send grant). */
  function resourcePolicyOf(request: IamRequest): PolicyDocument | undefined {
    const policies = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::S3::BucketPolicy' || r.Type === 'AWS::SQS::QueuePolicy')
      .map(
        (r) =>
          names.resolve(r.Properties) as {
            Bucket?: string;
            Queues?: string[];
            PolicyDocument: PolicyDocument;
          },
      );
    for (const policy of policies) {
      if (policy.Bucket !== undefined && request.resource.startsWith(`arn:aws:s3:::${policy.Bucket}`))
        return policy.PolicyDocument;
      if (
        policy.Queues?.some(
          (queueUrl) => request.resource === `arn:aws:sqs:us-east-1:${ACCOUNT}:${queueUrl.split('/').at(-1)}`,
        )
      )
        return policy.PolicyDocument;
    }
    return undefined;
  }

  interface Decision {
    readonly fn: Step;
    readonly command: string;
    readonly action: string;
    readonly resource: string;
    readonly result: string;
  }

  /** Every distinct (function, action, resource) the calls make, decided by iam-simulate. */
  async function evaluate(
    calls: readonly Call[],
    policiesOf: (step: Step) => PolicyDocument[],
  ): Promise<Decision[]> {
    const seen = new Map<string, { fn: Step; command: string; request: IamRequest }>();
    for (const call of calls) {
      for (const request of requestsOf(call)) {
        const key = `${call.fn} ${request.action} ${request.resource} ${JSON.stringify(request.context)}`;
        if (!seen.has(key)) seen.set(key, { fn: call.fn, command: call.command, request });
      }
    }
    const decisions: Decision[] = [];
    for (const { fn, command, request } of seen.values()) {
      const resourcePolicy = resourcePolicyOf(request);
      const result = await runSimulation(
        {
          request: {
            principal: names.arnOf(idOf(functionOf(fn).role)),
            action: request.action,
            resource: { resource: request.resource, accountId: ACCOUNT },
            contextVariables: { 'aws:SecureTransport': 'true', ...request.context },
          },
          identityPolicies: policiesOf(fn).map((policy, i) => ({ name: `${fn}-${i}`, policy })),
          serviceControlPolicies: [],
          resourceControlPolicies: [],
          ...(resourcePolicy === undefined ? {} : { resourcePolicy }),
        },
        {},
      );
      const decided =
        result.resultType === 'error' ? `error: ${JSON.stringify(result.errors)}` : result.overallResult;
      decisions.push({ fn, command, action: request.action, resource: request.resource, result: decided });
    }
    return decisions;
  }

  let decisions: Decision[];

  it('records the calls of all six functions, including the ones each step cannot work without', async () => {
    const has = (fn: Step, action: string, resource: string | RegExp) =>
      calls().some(
        (call) =>
          call.fn === fn &&
          requestsOf(call).some(
            (r) =>
              r.action === action &&
              (typeof resource === 'string' ? r.resource.includes(resource) : resource.test(r.resource)),
          ),
      );
    const queueName = (queue: IConstruct) => `:${names.nameOf(idOf(queue))}`;
    const { queues } = stack;
    const expected: [Step, string, string | RegExp][] = [
      ['plan', 's3:ListBucket', `arn:aws:s3:::${env.bucket}`],
      ['plan', 's3:GetObject', '/incoming/docs/'],
      ['plan', 's3:GetObject', '/datasets/docs/'],
      ['plan', 's3:PutObject', '/runs/'],
      ['plan', 'dynamodb:PutItem', ':table/'],
      ['plan', 'dynamodb:GetItem', ':table/'],
      ['plan', 'sqs:SendMessage', queueName(queues.work.queue)],
      ['plan', 'sqs:ChangeMessageVisibility', queueName(queues.ingest.queue)],
      // A dropped file is headed for its VersionId (the bucket is versioned) and read by it.
      ['plan', 's3:GetObjectVersion', '/incoming/docs/drop.jsonl'],
      ['work', 's3:GetObjectVersion', '/incoming/docs/drop.jsonl'],
      ['work', 's3:PutObject', '/results/'],
      ['work', 'sagemaker:InvokeEndpoint', ':endpoint/sluice-docs-embed'],
      ['work', 'dynamodb:UpdateItem', ':table/'],
      // The checkpoint hand-off (issue 12, item 3).
      ['work', 'sqs:SendMessage', queueName(queues.work.queue)],
      ['work', 'sqs:SendMessage', queueName(queues.finalize.queue)],
      ['work', 'sqs:ChangeMessageVisibility', queueName(queues.work.queue)],
      ['finalize', 's3:PutObject', '/runs/'],
      ['finalize', 'dynamodb:UpdateItem', ':table/'],
      ['finalize', 'sqs:ChangeMessageVisibility', queueName(queues.finalize.queue)],
      ['dead-letter', 'dynamodb:UpdateItem', ':table/'],
      ['dead-letter', 's3:GetObject', '/results/'],
      ['dead-letter', 'sqs:SendMessage', queueName(queues.finalize.queue)],
      // Score: a run's fit stage, whose finalize stores the statistics and sends the score stage's units.
      ['plan', 's3:GetObject', '/models/credit-risk/feature-stats.json'],
      ['work', 's3:GetObject', '/models/credit-risk/occupation-embedding.json'],
      ['work', 'sagemaker:InvokeEndpoint', ':endpoint/sluice-credit-risk'],
      ['finalize', 's3:PutObject', '/models/credit-risk/feature-stats.json'],
      ['finalize', 'sqs:SendMessage', queueName(queues.work.queue)],
      // Run-scoped capacity: the sweeper raises the docs copies a unit asked for (on demand),
      // reads leases and scales in.
      ['work', 'sagemaker:InvokeEndpoint', ':inference-component/sluice-docs-embed-model'],
      [
        'capacity-sweeper',
        'sagemaker:DescribeInferenceComponent',
        'inference-component/sluice-docs-embed-model',
      ],
      [
        'capacity-sweeper',
        'sagemaker:UpdateInferenceComponentRuntimeConfig',
        'inference-component/sluice-docs-embed-model',
      ],
      ['capacity-sweeper', 'dynamodb:Query', ':table/'],
      // Workers follow the copies: plan raises the work mapping's limit, the sweeper reads and lowers it.
      ['plan', 'lambda:GetEventSourceMapping', ':event-source-mapping:'],
      ['plan', 'lambda:UpdateEventSourceMapping', ':event-source-mapping:'],
      ['capacity-sweeper', 'lambda:GetEventSourceMapping', ':event-source-mapping:'],
      ['capacity-sweeper', 'lambda:UpdateEventSourceMapping', ':event-source-mapping:'],
      // The compute pool (issue 14) runs on WorkCompute, from the compute queue: plan sends its
      // units there, and finalize its later stages' units (recommend's similarity stage).
      ['plan', 'sqs:SendMessage', queueName(queues.workCompute!.queue)],
      ['finalize', 'sqs:SendMessage', queueName(queues.workCompute!.queue)],
      ['work-compute', 'sqs:SendMessage', queueName(queues.finalize.queue)],
      ['work-compute', 'sqs:ChangeMessageVisibility', queueName(queues.workCompute!.queue)],
      ['work-compute', 'dynamodb:UpdateItem', ':table/'],
      ['work-compute', 's3:PutObject', '/results/'],
      // In-worker scoring reads the JSON model itself, at the version its run pinned.
      ['work-compute', 's3:GetObjectVersion', '/models/credit-risk/model.json'],
      // Recommend: similarity units read the index the ingest merge wrote, and write users' lists.
      ['work-compute', 's3:GetObject', '/runs/recommend/'],
      // Generate: the worker asks the LLM endpoint through its component, and keeps the prompt
      // cache in the runs table, reading a miss from the old S3 cache (never written there).
      ['work', 'sagemaker:InvokeEndpoint', ':endpoint/sluice-generate-triage'],
      ['work', 'sagemaker:InvokeEndpoint', ':inference-component/sluice-generate-triage-model'],
      ['work', 'dynamodb:BatchGetItem', ':table/'],
      ['work', 'dynamodb:BatchWriteItem', ':table/'],
      ['work', 's3:GetObject', '/cache/prompts/generate-triage/'],
      [
        'finalize',
        'sagemaker:UpdateInferenceComponentRuntimeConfig',
        'inference-component/sluice-generate-triage-model',
      ],
      [
        'work-compute',
        'dynamodb:BatchWriteItem',
        `:table/${names.nameOf(idOf(stack.recommendationsTable!.table))}`,
      ],
      // ... and query each user's partition for lists of superseded runs to delete.
      ['work-compute', 'dynamodb:Query', `:table/${names.nameOf(idOf(stack.recommendationsTable!.table))}`],
    ];
    const missing = expected.filter(([fn, action, resource]) => !has(fn, action, resource));
    // The Lambda calls took (raiseWorkers and sweepWorkers report a failed call, not throw it):
    // plan raised the work mapping's limit above the floor, and the last sweep took it back.
    const limits = mappings.updates.map((update) => update.maximumConcurrency ?? 0);
    expect(Math.max(...limits), 'plan raised the workers').toBeGreaterThan(2);
    expect(limits.at(-1), 'the sweeper lowered them to the floor').toBe(2);
    expect(missing, 'calls the drive must make (a recorder that records nothing fails here)').toEqual([]);
    expect(calls().length).toBeGreaterThan(100);
  });

  it('allows every recorded call under the synthesized role policies (iam-simulate)', async () => {
    decisions = await evaluate(calls(), rolePolicies);
    const denied = decisions.filter((d) => d.result !== 'Allowed');
    mkdirSync(path.dirname(REPORT), { recursive: true });
    writeFileSync(REPORT, `${JSON.stringify({ decisions, unused: unusedGrants() }, null, 2)}\n`);
    expect(denied).toEqual([]);
    expect(new Set(decisions.map((d) => d.fn))).toEqual(new Set(STEPS));
  });

  it('denies the checkpoint hand-off under the old work policy, which could not send to the work queue', async () => {
    const workQueueArn = names.arnOf(idOf(stack.queues.work.queue));
    const oldPolicies = (step: Step) =>
      rolePolicies(step).map((document) => ({
        ...document,
        Statement: document.Statement.filter(
          (s) =>
            step !== 'work' ||
            !([s.Action].flat().includes('sqs:SendMessage') && [s.Resource].flat().includes(workQueueArn)),
        ),
      }));
    const workCalls = recorder.calls.filter((call) => call.fn === 'work');
    const old = await evaluate(workCalls, oldPolicies);
    expect(old.filter((d) => d.result !== 'Allowed')).toEqual([
      expect.objectContaining({
        command: 'SendMessageBatchCommand',
        action: 'sqs:SendMessage',
        resource: workQueueArn,
      }),
    ]);
  });

  it("carries a re-drop's unchanged chunks: Work reads their vectors from the earlier run's embeddings part under its role, and calls no endpoint", async () => {
    const first = redrop.earlier.filter((summary) => summary.counts.records === DROPPED_DOCS);
    expect(first, 'the first run of the drop').toHaveLength(1);
    const { runId: firstRunId, counts } = first[0]!;
    expect(counts.chunks).toBeGreaterThan(DROPPED_DOCS);
    expect(counts.embedded).toBe(counts.chunks);
    expect(redrop.runs).toEqual([
      expect.objectContaining({
        status: 'succeeded',
        counts: expect.objectContaining({
          records: DROPPED_DOCS,
          chunks: counts.chunks,
          skippedUnchanged: counts.chunks,
          embedded: 0,
        }),
        stats: expect.objectContaining({ endpointCalls: 0 }),
      }),
    ]);
    expect(redrop.workCalls.filter((call) => call.command === 'InvokeEndpointCommand')).toEqual([]);
    // What Work read under results/: the first run's embeddings parts, headed (their size),
    // then read by byte range (the footer, the row groups holding the chunks).
    const reads = redrop.workCalls.filter(
      (call) =>
        ['HeadObjectCommand', 'GetObjectCommand'].includes(call.command) &&
        String(call.input.Key).startsWith('results/'),
    );
    const partKey = new RegExp(
      `^results/embeddings/pipeline=docs/run_date=[0-9-]+/${firstRunId}-[^/]+\\.parquet$`,
    );
    expect(reads.filter((call) => !partKey.test(String(call.input.Key)))).toEqual([]);
    expect(reads.some((call) => call.command === 'HeadObjectCommand')).toBe(true);
    const ranged = reads.filter((call) => call.command === 'GetObjectCommand');
    expect(ranged.length).toBeGreaterThan(0);
    for (const call of ranged) expect(call.input.Range).toMatch(/^bytes=\d+-\d+$/);
    // Checked against Work's synthesized role: s3:GetObject on each part, allowed.
    const decided = await evaluate(reads, rolePolicies);
    expect(decided.length).toBeGreaterThan(0);
    for (const decision of decided)
      expect(decision).toMatchObject({
        fn: 'work',
        action: 's3:GetObject',
        resource: expect.stringMatching(`^arn:aws:s3:::${env.bucket}/results/embeddings/pipeline=docs/`),
        result: 'Allowed',
      });
  });

  /** Granted (action, resource) pairs that no recorded call of the function matches. */
  function unusedGrants(): { fn: Step; action: string; resource: string }[] {
    const unused: { fn: Step; action: string; resource: string }[] = [];
    for (const fn of STEPS) {
      const requests = calls()
        .filter((call) => call.fn === fn)
        .flatMap((call) => requestsOf(call));
      for (const document of rolePolicies(fn)) {
        for (const statement of document.Statement) {
          if (statement.Effect !== 'Allow') continue;
          for (const action of [statement.Action].flat() as string[]) {
            for (const resource of [statement.Resource].flat() as string[]) {
              const used = requests.some(
                (r) => iamPatternMatches(action, r.action, true) && iamPatternMatches(resource, r.resource),
              );
              if (!used) unused.push({ fn, action, resource });
            }
          }
        }
      }
    }
    return unused;
  }

  it('lists the granted actions no call uses, and each one is justified (docs/infra.md)', () => {
    const unused = unusedGrants();
    const justifies = (j: (typeof JUSTIFIED_UNUSED)[number], grant: (typeof unused)[number]) =>
      (j.fn === '*' || j.fn === grant.fn) &&
      iamPatternMatches(j.action, grant.action, true) &&
      (j.resource === undefined || grant.resource.includes(j.resource));
    expect(unused.filter((grant) => !JUSTIFIED_UNUSED.some((j) => justifies(j, grant)))).toEqual([]);
    // A justification no unused grant needs any more is stale: the grant is used now, or gone.
    expect(
      JUSTIFIED_UNUSED.filter((j) => !j.sometimes && !unused.some((grant) => justifies(j, grant))),
    ).toEqual([]);
  });

  /**
   * Granted (action, resource) pairs of `fn`, a function of `other` (a stack of the same
   * construct ids, so of the same deployed names), that no call of the drive's `step` uses and
   * {@link JUSTIFIED_UNUSED} does not justify for `step`. `sameAs` maps a resource of `other`
   * to the drive's resource it stands for (a one-pool stack's work queue is its own queue, as
   * the compute queue is WorkCompute's in the drive).
   */
  function unjustifiedGrantsIn(
    other: SluiceStack,
    fn: { role: IConstruct },
    step: Step,
    sameAs: Readonly<Record<string, string>> = {},
  ): { action: string; resource: string }[] {
    const otherTemplate = Template.fromStack(other).toJSON() as typeof template;
    const otherNames = new DeployedNames(otherTemplate);
    const roleRef = JSON.stringify({ Ref: idOf(fn.role) });
    const documents = Object.values(otherTemplate.Resources)
      .filter(
        (r) =>
          r.Type === 'AWS::IAM::Policy' &&
          ((r.Properties?.Roles ?? []) as unknown[]).some((role) => JSON.stringify(role) === roleRef),
      )
      .map((p) => otherNames.resolve(p.Properties?.PolicyDocument) as PolicyDocument);
    const requests = calls()
      .filter((call) => call.fn === step)
      .flatMap((call) => requestsOf(call));
    const out: { action: string; resource: string }[] = [];
    for (const statement of documents.flatMap((d) => d.Statement)) {
      if (statement.Effect !== 'Allow') continue;
      for (const action of [statement.Action].flat() as string[])
        for (const granted of [statement.Resource].flat() as string[]) {
          const resource = sameAs[granted] ?? granted;
          const used = requests.some(
            (r) => iamPatternMatches(action, r.action, true) && iamPatternMatches(resource, r.resource),
          );
          const justified = JUSTIFIED_UNUSED.some(
            (j) =>
              (j.fn === '*' || j.fn === step) &&
              iamPatternMatches(j.action, action, true) &&
              (j.resource === undefined || resource.includes(j.resource)),
          );
          if (!used && !justified) out.push({ action, resource });
        }
    }
    return out;
  }

  it('grants the one work function of a stack of endpoint pipelines (docs, credit-risk on its instance endpoint) only what the endpoint pool calls', async () => {
    // Its Work runs what the drive's Work runs; no run pins a model version (s3:GetObjectVersion
    // on models/ is for in-worker scoring), and the chunk index uses the batches.
    const other = buildStack({ pipelines: [await loadDocsPipeline(), await loadCreditRiskPipeline()] }).stack;
    expect(other.functions.workCompute).toBeUndefined();
    expect(unjustifiedGrantsIn(other, other.functions.work, 'work')).toEqual([]);
  }, 120_000);

  it('grants the one work function of a recommend-only stack only what the compute pool calls', async () => {
    // Its Work runs what the drive's WorkCompute runs, from its own queue: no chunk index or
    // prompt cache, so no batch operation on the runs table.
    const recommend = await loadPipelineConfig(path.join(repoRoot, 'pipelines'), 'recommend');
    const other = buildStack({ pipelines: [recommend] }).stack;
    expect(other.functions.workCompute).toBeUndefined();
    // Same construct ids, same names: the drive's template names the one-pool work queue too.
    const ownQueue = names.arnOf(idOf(other.queues.work.queue));
    const computeQueue = names.arnOf(idOf(stack.queues.workCompute!.queue));
    expect(
      unjustifiedGrantsIn(other, other.functions.work, 'work-compute', { [ownQueue]: computeQueue }),
    ).toEqual([]);
  }, 120_000);
});

/**
 * One address for SageMaker runtime calls that forwards `/endpoints/<name>/...` to the
 * model server of that endpoint (the scoring model), and everything else to `fallback`
 * (the embedding model): the handlers take one endpoint URL override for all endpoints.
 * Control-plane calls (`POST /` with `X-Amz-Target`) go by the `InferenceComponentName`
 * they name, so each component keeps its own emulated copies.
 */
async function routeEndpoints(byName: Record<string, ModelServer>, fallback: ModelServer): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let name = /^\/endpoints\/([^/]+)\//.exec(req.url ?? '')?.[1];
      if (name !== undefined) name = decodeURIComponent(name);
      else if (req.headers['x-amz-target'] !== undefined) {
        try {
          name = (JSON.parse(body.toString('utf8')) as { InferenceComponentName?: string })
            .InferenceComponentName;
        } catch {
          name = undefined;
        }
      }
      const target = (name === undefined ? undefined : byName[name]) ?? fallback;
      const forward = request(
        { host: '127.0.0.1', port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', (error) => {
        res.writeHead(502);
        res.end(error.message);
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
