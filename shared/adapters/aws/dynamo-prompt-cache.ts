import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  type CachedAnswer,
  PROMPT_ITEM_MAX_BYTES,
  type PromptCache,
  promptItemBytes,
  promptItemKey as promptKey,
} from '../../jobs/generate/prompt-cache.ts';
import type { Sleep } from './backoff.ts';
import { type BatchResendOptions, batchGetAllResending, batchPutAllResending } from './dynamo-batch.ts';

export interface DynamoPromptCacheOptions {
  /** Created once per process and injected. */
  readonly doc: DynamoDBDocumentClient;
  /** The runs table: prompt items share it under their own key prefix (`PROMPT#`). */
  readonly tableName: string;
  /**
   * Where answers were cached before (the S3 object store cache), read on a miss only and
   * never written: a stack upgraded from it does not pay the LLM again for those prompts.
   * Its hits are copied into the table. Remove once the old entries no longer matter.
   */
  readonly legacy?: Pick<PromptCache, 'lookup'>;
  /** Told of each answer too large for an item (not cached: asked again next run). */
  readonly onSkipped?: (pipeline: string, promptSha256: string, bytes: number) => void;
  /** Calls per batch while DynamoDB returns unprocessed keys or items. @default 8 */
  readonly maxAttempts?: number;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
}

type Item = Record<string, unknown>;

/**
 * (secondary adapter) The prompt cache in the runs table, by point lookups only:
 * item pk=`PROMPT#<pipeline>#<sha256>`, sk=`PROMPT`, the {@link CachedAnswer}'s fields.
 * Lookups are BatchGetItem of 100 keys (eventually consistent: an answer recorded a moment
 * ago and missed is only asked again), records BatchWriteItem of 25, unprocessed keys and
 * items resent with backoff. An answer whose item would pass 400 KB is not cached (told to
 * `onSkipped`). With `legacy`, a miss is looked up in the old S3 cache and a hit copied in
 * (docs/generate.md, "Prompt cache").
 */
export class DynamoPromptCache implements PromptCache {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly resend: BatchResendOptions;

  constructor(private readonly options: DynamoPromptCacheOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.resend = { maxAttempts: options.maxAttempts, sleep: options.sleep, random: options.random };
  }

  async lookup(pipeline: string, fingerprints: readonly string[]): Promise<Map<string, CachedAnswer>> {
    const unique = [...new Set(fingerprints)];
    const found = new Map<string, CachedAnswer>();
    const target = { doc: this.doc, tableName: this.tableName, label: 'prompt cache keys unread' };
    const keys = unique.map((f) => promptKey(pipeline, f));
    for (const item of await batchGetAllResending(target, keys, this.resend)) {
      const answer = answerOf(item);
      if (answer) found.set(answer.promptSha256, answer);
    }
    const legacy = this.options.legacy;
    const missed = unique.filter((f) => !found.has(f));
    if (legacy === undefined || missed.length === 0) return found;
    const copied = await legacy.lookup(pipeline, missed);
    await this.record(pipeline, [...copied.values()]);
    for (const [fingerprint, answer] of copied) found.set(fingerprint, answer);
    return found;
  }

  async record(pipeline: string, answers: readonly CachedAnswer[]): Promise<void> {
    const items: Item[] = [];
    for (const answer of answers) {
      const bytes = promptItemBytes(pipeline, answer);
      if (bytes > PROMPT_ITEM_MAX_BYTES) {
        this.options.onSkipped?.(pipeline, answer.promptSha256, bytes);
        continue;
      }
      items.push({ ...promptKey(pipeline, answer.promptSha256), ...answer });
    }
    // One put per key per batch: DynamoDB refuses a batch that names a key twice.
    const unique = [...new Map(items.map((item) => [`${item.pk}`, item])).values()];
    const target = { doc: this.doc, tableName: this.tableName, label: 'prompt cache items unwritten' };
    await batchPutAllResending(target, unique, this.resend);
  }
}

/** The answer an item holds; an item that is not one is a miss (the prompt is asked again). */
function answerOf(item: Item): CachedAnswer | undefined {
  if (typeof item.promptSha256 !== 'string' || typeof item.output !== 'string') return undefined;
  return {
    promptSha256: item.promptSha256,
    model: String(item.model ?? ''),
    output: item.output,
    outputJson: typeof item.outputJson === 'string' ? item.outputJson : null,
    finishReason: typeof item.finishReason === 'string' ? item.finishReason : null,
    attempts: Number(item.attempts ?? 0),
    promptTokens: Number(item.promptTokens ?? 0),
    completionTokens: Number(item.completionTokens ?? 0),
    runId: String(item.runId ?? ''),
  };
}
