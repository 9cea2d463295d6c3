import { copiesForRun } from '../capacity/copies.ts';
import { DEFAULT_WORKERS_PER_COPY } from '../capacity/workers.ts';
import type { GeneratePipelineConfig } from '../config/pipeline-config.ts';
import { unitCount } from '../plan/plan-units.ts';
import { coldStartFor } from './cold-start.ts';
import { typicalPromptCacheItemStorageBytes } from './dynamo-storage.ts';
import { estimatedCooldownSeconds, type RunEstimate } from './estimate-run.ts';
import { runUsageOf, type UnitUsage } from './unit-usage.ts';

/**
 * Completion tokens per second one copy of an LLM endpoint generates with requests kept in
 * flight, the figure a generate estimate assumes when none is given. Not a SageMaker
 * measurement (no GPU run has replaced it yet): pass `--completion-tokens-per-second` from
 * a run of your own (the summary's `stats.completionTokens` over the endpoint window).
 *
 * Derivation: a published vLLM sweep of Llama-3.1-8B-Instruct (BF16) on one A100 40GB
 * decodes about 75 tokens/s with one request in flight and 6.6x that (about 495 tokens/s)
 * at 8, each request a 1,024-token prompt and 128 completion tokens; decoding an 8B model
 * is bound by memory bandwidth, and the A10G of ml.g5.xlarge/2xlarge has 600 GB/s against
 * the A100 40GB's 1,555 GB/s, so one A10G copy is taken at 495 x 600 / 1,555 = 190
 * completion tokens/s. The prompts' prefill is inside that figure for prompts up to 8x the
 * completion (the sweep's mix); far longer prompts make it optimistic.
 */
export const LLM_THROUGHPUT_ASSUMPTION = {
  completionTokensPerSecond: 190,
  promptToCompletionRatio: 8,
  source:
    'https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on (vLLM, Llama-3.1-8B-Instruct on one A100 40GB: 75 tokens/s at 1 in flight, 6.6x at 8, 1,024-token prompts, 128-token completions), scaled by memory bandwidth to one A10G (600 / 1,555 GB/s)',
} as const;

/**
 * Tokens a chat template adds per message (role header and end-of-turn markers; Llama 3's
 * template adds 4 to 5) beyond the message text the estimator counts, and once per request.
 */
export const CHAT_TEMPLATE_TOKENS = { perMessage: 4, perRequest: 1 } as const;

/** What `sluice cost` measured of a generate pipeline's inputs. */
export interface GenerateWork {
  /** Records the planner estimates (answered ones and rejects). */
  readonly records: number;
  /** Records whose prompt renders (the others are rejected without a call). */
  readonly answerable: number;
  /** Estimated prompt tokens of the answerable records, chat template included. */
  readonly promptTokens: number;
  /** Completion tokens: `generation.maxTokens` per answerable record (an upper bound) unless given. */
  readonly completionTokens: number;
}

export interface GenerateEstimateInput {
  readonly config: GeneratePipelineConfig;
  /** The planner's estimate of the run's cost, in its unit (sizes units and leased copies as plan does). */
  readonly estimatedCost: number;
  readonly work: GenerateWork;
  /** @default LLM_THROUGHPUT_ASSUMPTION.completionTokensPerSecond */
  readonly completionTokensPerSecond?: number;
  /** @default the instance type's figure for an LLM, {@link coldStartFor} */
  readonly coldStartSeconds?: number;
}

/** Bytes a generations row and its prompt-cache entry take besides the answer's text. */
const ROW_OVERHEAD_BYTES = 200;
/**
 * Bytes a prompt-cache item takes besides the answer's text: its key (the fingerprint twice),
 * model, run id, counts and attribute names (`promptItemBytes` of an empty answer: about 380).
 */
const PROMPT_ITEM_OVERHEAD_BYTES = 400;
/** Bytes of answer text per completion token (about 4 characters a token). */
const BYTES_PER_TOKEN = 4;

/**
 * DynamoDB request units per record of the prompt cache on a run that misses it: one
 * eventually consistent read of a missing key (0.5) and one write of the answer's item,
 * 1 unit per KB started of the average answer's item (its text at 4 bytes a token and
 * {@link PROMPT_ITEM_OVERHEAD_BYTES} of fields and key). Longer answers cost more to write, not to look up.
 */
export function promptCacheUnitsPerRecord(work: Pick<GenerateWork, 'answerable' | 'completionTokens'>): {
  read: number;
  write: number;
} {
  if (work.answerable === 0) return { read: 0, write: 0 };
  const itemBytes = (work.completionTokens * BYTES_PER_TOKEN) / work.answerable + PROMPT_ITEM_OVERHEAD_BYTES;
  return { read: 0.5, write: Math.max(1, Math.ceil(itemBytes / 1024)) };
}

/**
 * Bytes of billed DynamoDB storage the prompt cache gains per answered record: one item of
 * the average answer (its text at 4 bytes a token; twice with `output.jsonSchema`, since the
 * item keeps `output` and `outputJson`) with the average prompt and completion tokens, plus
 * DynamoDB's 100 bytes of per-item overhead. Every record is taken as new to the cache (the
 * estimate asks every prompt); a re-run of cached prompts adds none.
 */
export function promptCacheStorageBytesPerRecord(
  config: Pick<GeneratePipelineConfig, 'name' | 'model' | 'output'>,
  work: Pick<GenerateWork, 'answerable' | 'promptTokens' | 'completionTokens'>,
): number {
  if (work.answerable === 0) return 0;
  return typicalPromptCacheItemStorageBytes({
    pipeline: config.name,
    model: config.model,
    outputBytes: (work.completionTokens * BYTES_PER_TOKEN) / work.answerable,
    json: config.output.jsonSchema !== undefined,
    promptTokens: work.promptTokens / work.answerable,
    completionTokens: work.completionTokens / work.answerable,
  });
}

/**
 * The usage a generate run would have, priced like an embed run: the LLM endpoint's copies
 * (as many as plan would lease: `copiesForRun` of the planner's estimate, 1 without
 * `capacity.workPerSecondPerCopy`) billed from the lease (a cold start) through the
 * completions at the per-copy rate to the end of the cooldown kept (`capacity.cooldown`);
 * workers that follow the copies (`workersPerCopy` each) and wait on the endpoint while it
 * is busy; per record a prompt-cache lookup and record in the runs table (0.5 read request
 * unit, and 1 write request unit per KB of the average answer's item: see
 * {@link promptCacheUnitsPerRecord}) and its item kept in the table
 * ({@link promptCacheStorageBytesPerRecord}, a month of it in `storage`), one S3 GET of the
 * old S3 cache on the miss (until that fallback is removed) and the answer written to the
 * `generations` part; per unit a range read, its parts and the run store's start and completion. `always-on` capacity is charged the busy window only, as
 * finalize charges a run without a lease.
 */
export function estimateGenerateUsage(input: GenerateEstimateInput): RunEstimate {
  const { config, work } = input;
  const throughput = input.completionTokensPerSecond ?? LLM_THROUGHPUT_ASSUMPTION.completionTokensPerSecond;
  const capacity = config.endpoint.capacity;
  const runScoped = config.endpoint.url === undefined && capacity.mode === 'run-scoped';
  const copies = copiesForRun(input.estimatedCost, capacity);
  const busySeconds = work.completionTokens / throughput / copies;
  const coldStartSeconds = runScoped
    ? (input.coldStartSeconds ?? coldStartFor(config.endpoint.instanceType, { llm: true }).seconds)
    : 0;
  const cooldownSeconds = runScoped
    ? estimatedCooldownSeconds(config, capacity, coldStartSeconds + busySeconds)
    : 0;
  const { units } = unitCount(input.estimatedCost, config);
  const workers = Math.min(
    units,
    config.workers.maxConcurrency,
    copies * (capacity.workersPerCopy ?? DEFAULT_WORKERS_PER_COPY),
  );
  const perUnit = (total: number) => total / units;
  const cacheUnits = promptCacheUnitsPerRecord(work);
  const unitUsage: UnitUsage = {
    workerMs: perUnit(busySeconds * workers * 1000),
    memoryMiB: config.workers.memoryMiB,
    endpointFirstAt: 0,
    endpointLastAt: 0,
    endpointCallMs: 0,
    endpointCalls: perUnit(work.answerable),
    // Request bodies: the messages' text, about 4 bytes a token.
    endpointBytes: perUnit(work.promptTokens * BYTES_PER_TOKEN),
    s3Gets: 1 + perUnit(work.answerable),
    s3Puts: 3,
    bytesPut: perUnit(work.completionTokens * BYTES_PER_TOKEN + work.answerable * ROW_OVERHEAD_BYTES),
    queueSends: 0,
    runStoreReads: 0,
    runStoreWrites: 2,
    promptCacheReadUnits: perUnit(work.answerable * cacheUnits.read),
    promptCacheWriteUnits: perUnit(work.answerable * cacheUnits.write),
    dynamoBytesAdded: perUnit(work.answerable * promptCacheStorageBytesPerRecord(config, work)),
  };
  const usage = runUsageOf(
    Array.from({ length: units }, () => ({ attempts: 1, usage: unitUsage })),
    { kind: 'instance', instanceType: config.endpoint.instanceType },
  );
  const endpointSeconds = copies * (coldStartSeconds + busySeconds + cooldownSeconds);
  return {
    usage: {
      ...usage,
      endpointSeconds,
      promptTokens: work.promptTokens,
      completionTokens: work.completionTokens,
    },
    units,
    work: { amount: work.completionTokens, unit: 'completion tokens' },
    throughputPerSecond: throughput,
    hosting: 'instance',
    capacity: {
      mode: runScoped ? 'run-scoped' : 'always-on',
      copies,
      busySeconds,
      coldStartSeconds,
      cooldownSeconds,
    },
  };
}

/** A batch LLM API's per-token prices users compare a generate run with, and where they were read. */
export interface LlmBatchAnchor {
  readonly name: string;
  readonly usdPerMillionPromptTokens: number;
  readonly usdPerMillionCompletionTokens: number;
  readonly source: string;
  readonly readOn: string;
}

/**
 * Batch LLM APIs for a comparable small model (issue 18's anchors), each 50% off its
 * on-demand per-token prices, results within 24 hours.
 */
export const LLM_BATCH_ANCHORS: readonly LlmBatchAnchor[] = [
  {
    name: 'OpenAI Batch API, gpt-4o-mini',
    // Standard $0.15 input / $0.60 output per 1M tokens; the Batch API bills half.
    usdPerMillionPromptTokens: 0.075,
    usdPerMillionCompletionTokens: 0.3,
    source:
      'https://openai.com/api/pricing/ (gpt-4o-mini $0.15 / $0.60 per 1M input / output; Batch API 50% off: $0.075 / $0.30, as quoted at https://apicalculators.com/blog/openai-batch-api-cost-2026 and https://aicosthub.com/guides/openai-batch-api-cost-savings)',
    readOn: '2026-12-07',
  },
  {
    name: 'Bedrock batch inference, Llama 3 8B Instruct',
    // On-demand $0.22 per 1M input and per 1M output tokens; batch takes 50% off.
    usdPerMillionPromptTokens: 0.11,
    usdPerMillionCompletionTokens: 0.11,
    source:
      'https://aws.amazon.com/bedrock/pricing/ (Llama 3 8B Instruct on demand $0.22 / $0.22 per 1M input / output, as quoted at https://inventivehq.com/blog/aws-bedrock-pricing-guide); batch "50% cost savings vs on-demand": https://docs.aws.amazon.com/bedrock/latest/userguide/capacity-limits-cost-optimization.html',
    readOn: '2026-12-07',
  },
];

/** What an anchor charges for these tokens, in US dollars (unrounded). */
export function anchorUsd(anchor: LlmBatchAnchor, promptTokens: number, completionTokens: number): number {
  return (
    (promptTokens / 1_000_000) * anchor.usdPerMillionPromptTokens +
    (completionTokens / 1_000_000) * anchor.usdPerMillionCompletionTokens
  );
}
