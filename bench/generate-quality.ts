/**
 * Generate benchmarks (issue 18): repair and prompt cache, against the local rules-chat
 * backend (NOT a language model) served on 127.0.0.1 and called through the real
 * SageMaker runtime client, as a local run calls it.
 *
 * - repair: 10% of JSON answers broken (a fresh draw per attempt); share of records that
 *   end valid within 2 repairs (target >= 0.99), every other one in rejects; baseline: no
 *   repair (maxRepairs 0).
 * - cache: a re-run after editing 5% of the records; share of records asked again (target
 *   <= 0.06); baseline: no prompt cache (every record asked again).
 *
 * Standalone: `node --import tsx bench/generate-quality.ts` (writes bench/results/generate.json).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { RulesChatBackend } from '../cli/model-server/rules-chat-backend.ts';
import { startModelServer } from '../cli/model-server/server.ts';
import { SageMakerChatEndpoint } from '../shared/adapters/aws/sagemaker-chat-endpoint.ts';
import { sageMakerClientSettings } from '../shared/adapters/aws/sagemaker-invoker.ts';
import { MemoryObjectStore } from '../shared/adapters/local/memory-object-store.ts';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import { AdaptiveLimiter } from '../shared/endpoint/adaptive-limiter.ts';
import type { ChatEndpoint } from '../shared/jobs/generate/chat-endpoint.ts';
import { compileGenerateJob } from '../shared/jobs/generate/generate-config.ts';
import { type GeneratedUnit, generateUnit } from '../shared/jobs/generate/generate-unit.ts';
import { ObjectStorePromptCache, type PromptCache } from '../shared/jobs/generate/prompt-cache.ts';

const RECORDS = 2000;
const SOURCE = 'incoming/bench/tickets.jsonl';
const SUBJECTS = ['Checkout is down', 'Charged twice', 'Cannot log in', 'Export question', 'Slow dashboard'];

function configWith(maxRepairs: number): GeneratePipelineConfig {
  return parsePipelineConfig({
    name: 'bench-triage',
    kind: 'generate',
    model: 'bench',
    input: { format: 'jsonl' },
    prompt: {
      system: 'Triage the ticket. Answer with JSON only.',
      user: 'Ticket {{ id }}: {{ subject }}\n{{ text }}',
    },
    output: {
      jsonSchema: {
        type: 'object',
        properties: {
          priority: { enum: ['low', 'normal', 'high'] },
          category: { enum: ['billing', 'account', 'bug', 'other'] },
          summary: { type: 'string' },
        },
        required: ['priority', 'category', 'summary'],
        additionalProperties: false,
      },
      maxRepairs,
    },
    endpoint: { concurrency: 32 },
  }) as GeneratePipelineConfig;
}

function source(edited: ReadonlySet<number> = new Set()): string {
  const lines: string[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const subject = SUBJECTS[i % SUBJECTS.length]!;
    const text = `Ticket body ${i}: ${subject.toLowerCase()} since this morning`;
    lines.push(JSON.stringify({ id: `T-${i}`, subject, text: edited.has(i) ? `${text} (edited)` : text }));
  }
  return `${lines.join('\n')}\n`;
}

async function runUnit(
  store: MemoryObjectStore,
  endpoint: ChatEndpoint,
  config: GeneratePipelineConfig,
  runId: string,
  body: string,
  cache?: PromptCache,
): Promise<GeneratedUnit> {
  store.objects.set(SOURCE, new TextEncoder().encode(body));
  const unit: WorkUnit = {
    runId,
    unitId: 'u0000',
    pipeline: config.name,
    sourceKey: SOURCE,
    byteStart: 0,
    byteEnd: Buffer.byteLength(body),
    firstLine: 1,
    format: 'jsonl',
    compression: 'none',
    packed: [],
    estCost: 1,
  };
  const result = await generateUnit({ store, endpoint, cache }, config, compileGenerateJob(config), unit, {
    add: () => {},
  });
  await cache?.record(config.name, result.fresh);
  return result;
}

export async function runGenerateBench() {
  const server = await startModelServer({ backend: new RulesChatBackend({ invalidJsonRate: 0.1 }) });
  const client = new SageMakerRuntimeClient({
    endpoint: server.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...sageMakerClientSettings({ requestTimeoutMs: 60_000, maxSockets: 64 }),
  });
  const endpoint = new SageMakerChatEndpoint({
    client,
    endpointName: 'bench-triage',
    maxRetries: 6,
    timeoutMs: 60_000,
    limiter: new AdaptiveLimiter({ initialLimit: 8, maxLimit: 32 }),
  });
  try {
    // Repair: with 2 repairs, against none.
    const repaired = await runUnit(
      new MemoryObjectStore(),
      endpoint,
      configWith(2),
      'r-20261207T120000Z-aaaaaa',
      source(),
    );
    const unrepaired = await runUnit(
      new MemoryObjectStore(),
      endpoint,
      configWith(0),
      'r-20261207T120000Z-bbbbbb',
      source(),
    );
    const repair = {
      records: RECORDS,
      invalidJsonRate: 0.1,
      maxRepairs: 2,
      validShare: repaired.counts.generated / RECORDS,
      rejected: repaired.rejects.length,
      everyRecordAccounted: repaired.counts.generated + repaired.rejects.length === RECORDS,
      callsPerRecord: repaired.counts.endpointCalls / RECORDS,
      baselineNoRepair: {
        validShare: unrepaired.counts.generated / RECORDS,
        rejected: unrepaired.rejects.length,
      },
      target: '>= 0.99 valid within 2 repairs',
      met: repaired.counts.generated / RECORDS >= 0.99,
    };

    // Cache: re-run after editing 5% of the records, with the prompt cache and without.
    const store = new MemoryObjectStore();
    const cache = new ObjectStorePromptCache(store);
    const config = configWith(2);
    const first = await runUnit(store, endpoint, config, 'r-20261207T130000Z-cccccc', source(), cache);
    const edited = new Set(Array.from({ length: RECORDS / 20 }, (_, i) => i * 20 + 7));
    const second = await runUnit(store, endpoint, config, 'r-20261207T140000Z-dddddd', source(edited), cache);
    const uncached = await runUnit(
      new MemoryObjectStore(),
      endpoint,
      config,
      'r-20261207T140000Z-eeeeee',
      source(edited),
    );
    const cacheResult = {
      records: RECORDS,
      editedShare: edited.size / RECORDS,
      firstRun: { generated: first.counts.generated, cached: first.counts.cached },
      reRun: {
        generated: second.counts.generated,
        cached: second.counts.cached,
        rejected: second.rejects.length,
        regeneratedShare: second.counts.generated / RECORDS,
        completionTokens: second.counts.completionTokens,
      },
      baselineNoCache: {
        generated: uncached.counts.generated,
        regeneratedShare: uncached.counts.generated / RECORDS,
        completionTokens: uncached.counts.completionTokens,
      },
      target: '<= 0.06 regenerated',
      met: second.counts.generated / RECORDS <= 0.06,
    };
    return { name: 'generate', backend: new RulesChatBackend().description, repair, cache: cacheResult };
  } finally {
    client.destroy();
    await server.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const result = await runGenerateBench();
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'generate.json');
  writeFileSync(out, `${JSON.stringify({ ...result, measuredAt: new Date().toISOString() }, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}
