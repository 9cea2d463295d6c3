import type { ObjectStore } from '../../ports/object-store.ts';

/** What the prompt cache keeps of an answered prompt: enough to write its row again. */
export interface CachedAnswer {
  readonly promptSha256: string;
  readonly model: string;
  readonly output: string;
  readonly outputJson: string | null;
  readonly finishReason: string | null;
  /** What answering it cost when it was answered (calls, tokens), for a retry of that same run. */
  readonly attempts: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The run that answered it. */
  readonly runId: string;
}

/**
 * (port) Answers of a pipeline's prompts, keyed by prompt fingerprint (`prompt_sha256`:
 * the rendered messages, model and generation parameters), so a re-run asks only prompts
 * it has not answered. Lookups are point reads by fingerprint, never a scan. Only valid
 * answers are kept: a rejected prompt is asked again next run.
 */
export interface PromptCache {
  lookup(pipeline: string, fingerprints: readonly string[]): Promise<Map<string, CachedAnswer>>;
  /** Records answers after the unit's part is written; writing the same entry again is harmless. */
  record(pipeline: string, answers: readonly CachedAnswer[]): Promise<void>;
}

/** Point reads and writes in flight at once per lookup or record. */
const CONCURRENCY = 16;

const FINGERPRINT = /^[0-9a-f]{64}$/;

/** Where the prompt cache lives in the bucket; the deployed work function reads and writes under it. */
export const PROMPT_CACHE_PREFIX = 'cache/prompts/';

/** `cache/prompts/<pipeline>/<first 2 hex>/<sha256>.json`: spread prefixes for S3's per-prefix request rates. */
export function promptCacheKey(pipeline: string, fingerprint: string): string {
  if (!FINGERPRINT.test(fingerprint)) throw new Error(`not a prompt fingerprint: ${fingerprint}`);
  return `${PROMPT_CACHE_PREFIX}${pipeline}/${fingerprint.slice(0, 2)}/${fingerprint}.json`;
}

/**
 * The deployed cache's item of an answer in the runs table (shared/adapters/aws/dynamo-prompt-cache.ts):
 * pk=`PROMPT#<pipeline>#<sha256>`, a prefix no other item of the table uses.
 */
export function promptItemKey(pipeline: string, fingerprint: string): { pk: string; sk: string } {
  return { pk: `PROMPT#${pipeline}#${fingerprint}`, sk: 'PROMPT' };
}

/**
 * DynamoDB refuses an item over 400 KB (names and values). {@link promptItemBytes} counts the
 * answer as JSON, a little more than DynamoDB does, so an item under it fits.
 */
export const PROMPT_ITEM_MAX_BYTES = 400 * 1024;

/** An upper bound of an answer's item size as DynamoDB counts it: its keys and the answer as JSON. */
export function promptItemBytes(pipeline: string, answer: CachedAnswer): number {
  return Buffer.byteLength(JSON.stringify({ ...promptItemKey(pipeline, answer.promptSha256), ...answer }));
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * (secondary adapter) The prompt cache as one small JSON object per answered prompt in the
 * object store: a local run's cache in its bucket. Deployed, the cache is in the runs table
 * (DynamoPromptCache: an S3 PUT per answer cost $5 per 1M records) and this adapter only
 * reads the answers cached in S3 before that, on a miss, until the fallback is removed
 * (docs/generate.md, "Prompt cache"). An entry that cannot be read as one is a miss: the
 * prompt is asked again.
 */
export class ObjectStorePromptCache implements PromptCache {
  constructor(private readonly store: ObjectStore) {}

  async lookup(pipeline: string, fingerprints: readonly string[]): Promise<Map<string, CachedAnswer>> {
    const found = new Map<string, CachedAnswer>();
    await forEachLimited([...new Set(fingerprints)], CONCURRENCY, async (fingerprint) => {
      const body = await this.store.get(promptCacheKey(pipeline, fingerprint));
      if (body === undefined) return;
      const entry = parseEntry(new TextDecoder().decode(body));
      if (entry?.promptSha256 === fingerprint) found.set(fingerprint, entry);
    });
    return found;
  }

  async record(pipeline: string, answers: readonly CachedAnswer[]): Promise<void> {
    await forEachLimited(answers, CONCURRENCY, (answer) =>
      this.store.put(
        promptCacheKey(pipeline, answer.promptSha256),
        JSON.stringify(answer),
        'application/json',
      ),
    );
  }
}

function parseEntry(text: string): CachedAnswer | undefined {
  try {
    const entry = JSON.parse(text) as Partial<CachedAnswer>;
    if (typeof entry.promptSha256 !== 'string' || typeof entry.output !== 'string') return undefined;
    return entry as CachedAnswer;
  } catch {
    return undefined;
  }
}
