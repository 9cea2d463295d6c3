import { randomInt } from 'node:crypto';
import type { WorkUnit } from '../domain/types.ts';
import type { ChatEndpoint } from '../jobs/generate/chat-endpoint.ts';
import { PROMPT_ITEM_MAX_BYTES, type PromptCache, promptItemBytes } from '../jobs/generate/prompt-cache.ts';
import type { ChunkIndex } from '../ports/chunk-index.ts';
import type { CallStats, EmbeddingEndpoint } from '../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { ScoringEndpoint } from '../ports/scoring-endpoint.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import type { DynamoItem } from './dynamo-item-size.ts';
import { dynamoItemBytes } from './dynamo-item-size.ts';
import { batchGetReadUnits, writeRequestUnits } from './dynamo-request-units.ts';
import { docIndexItem, promptCacheItem, StoredItemTally } from './dynamo-storage.ts';
import type { EndpointHosting, RunUsage } from './run-cost.ts';
import type { UnitUsage } from './unit-usage-record.ts';

// The record of what a unit used lives apart from the meter, so that the domain types that
// store it need not import this module (which imports the ports, which import them).
export type { UnitUsage } from './unit-usage-record.ts';

export const emptyUnitUsage = (): UnitUsage => ({
  workerMs: 0,
  memoryMiB: 0,
  endpointFirstAt: 0,
  endpointLastAt: 0,
  endpointCallMs: 0,
  s3Gets: 0,
  s3Puts: 0,
  bytesPut: 0,
  queueSends: 0,
  runStoreReads: 0,
  runStoreWrites: 0,
});

const byteLength = (body: Uint8Array | string): number =>
  typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;

/**
 * This process's or thread's worker number (see {@link UnitUsage.worker}): module state is
 * per thread, and a Lambda execution environment is one process.
 */
const WORKER = randomInt(1, 2 ** 31);

/**
 * Counts a unit's calls where the ports are called: wraps each port so that every call
 * adds to one {@link UnitUsage}. The wrappers change nothing else a port does. The meter is
 * made when a delivery starts, so it also stamps the start and the worker that ran it.
 */
export class UsageMeter {
  readonly usage: UnitUsage;
  /** Whether an endpoint call of this delivery was answered (a unit that waited for capacity was served). */
  endpointServed = false;

  constructor(private readonly now: () => number = Date.now) {
    this.usage = { ...emptyUnitUsage(), startedAt: now(), worker: WORKER };
  }

  objectStore(store: ObjectStore): ObjectStore {
    const usage = this.usage;
    return {
      head: (key, options) => {
        usage.s3Gets += 1;
        return store.head(key, options);
      },
      readRange: (key, start, end, options) => {
        usage.s3Gets += 1;
        return store.readRange(key, start, end, options);
      },
      put: (key, body, contentType) => {
        usage.s3Puts += 1;
        usage.bytesPut += byteLength(body);
        return store.put(key, body, contentType);
      },
      get: (key) => {
        usage.s3Gets += 1;
        return store.get(key);
      },
      list: (prefix) => {
        usage.s3Puts += 1; // LIST is billed in the PUT tier
        return store.list(prefix);
      },
      ...(store.openWrite && {
        openWrite: async (key: string, contentType?: string) => {
          // A streamed part is one multipart upload: counted as one PUT.
          usage.s3Puts += 1;
          const write = await (store.openWrite as NonNullable<ObjectStore['openWrite']>).call(
            store,
            key,
            contentType,
          );
          return {
            write: (bytes: Uint8Array) => {
              usage.bytesPut += bytes.byteLength;
              return write.write(bytes);
            },
            finish: () => write.finish(),
            abort: () => write.abort(),
          };
        },
      }),
    };
  }

  /** Times each call: the window from the first start to the last end, and their sum. */
  private async timed<T>(call: () => Promise<T>, bytes: number): Promise<T> {
    this.usage.endpointCalls = (this.usage.endpointCalls ?? 0) + 1;
    this.usage.endpointBytes = (this.usage.endpointBytes ?? 0) + bytes;
    const started = this.now();
    if (this.usage.endpointFirstAt === 0 || started < this.usage.endpointFirstAt)
      this.usage.endpointFirstAt = started;
    try {
      const answer = await call();
      this.endpointServed = true;
      return answer;
    } finally {
      const ended = this.now();
      this.usage.endpointCallMs += ended - started;
      this.usage.endpointMaxCallMs = Math.max(this.usage.endpointMaxCallMs ?? 0, ended - started);
      if (ended > this.usage.endpointLastAt) this.usage.endpointLastAt = ended;
    }
  }

  embeddingEndpoint(endpoint: EmbeddingEndpoint): EmbeddingEndpoint {
    return {
      embed: (inputs: readonly string[], stats: CallStats) =>
        this.timed(
          () => endpoint.embed(inputs, stats),
          inputs.reduce((sum, input) => sum + Buffer.byteLength(input), 0),
        ),
    };
  }

  scoringEndpoint(endpoint: ScoringEndpoint): ScoringEndpoint {
    const { atVersion } = endpoint;
    return {
      score: (rows: string, stats: CallStats) =>
        this.timed(() => endpoint.score(rows, stats), Buffer.byteLength(rows)),
      // A unit pinned to a model version is metered the same.
      ...(atVersion && {
        atVersion: (version: string) => this.scoringEndpoint(atVersion.call(endpoint, version)),
      }),
    };
  }

  /**
   * Times each chat request like an embedding batch: the run's endpoint window (instance
   * hosting) is from its first request's start to its last one's end, whatever the tokens.
   */
  chatEndpoint(endpoint: ChatEndpoint): ChatEndpoint {
    return {
      complete: (body: string, cost: number, stats: CallStats) =>
        this.timed(() => endpoint.complete(body, cost, stats), Buffer.byteLength(body)),
    };
  }

  queue(queue: WorkQueue): WorkQueue {
    const usage = this.usage;
    return {
      sendUnits: (units) => {
        usage.queueSends += Math.ceil(units.length / 10); // SendMessageBatch takes 10
        return queue.sendUnits(units);
      },
      requestFinalize: (runId) => {
        usage.queueSends += 1;
        return queue.requestFinalize(runId);
      },
      ...(queue.sendUnitLater && {
        sendUnitLater: (unit: WorkUnit, delaySeconds: number) => {
          usage.queueSends += 1;
          return (queue.sendUnitLater as NonNullable<WorkQueue['sendUnitLater']>).call(
            queue,
            unit,
            delaySeconds,
          );
        },
      }),
    };
  }

  /**
   * Counts the prompt cache's calls as the deployed DynamoDB cache bills them (see
   * {@link UnitUsage.promptCacheReadUnits}): the cache itself is not metered otherwise, so a
   * local run (object store cache) is priced as if deployed. A miss also costs one S3 GET
   * while the deployed cache falls back to the old S3 cache (docs/generate.md).
   */
  promptCache(cache: PromptCache): PromptCache {
    const usage = this.usage;
    const stored = new StoredItemTally();
    return {
      lookup: async (pipeline, fingerprints) => {
        const found = await cache.lookup(pipeline, fingerprints);
        const keys = new Set(fingerprints).size;
        const foundBytes: number[] = [];
        for (const answer of found.values()) {
          foundBytes.push(promptItemBytes(pipeline, answer));
          stored.found(promptCacheItem(pipeline, answer));
        }
        usage.promptCacheReadUnits = (usage.promptCacheReadUnits ?? 0) + batchGetReadUnits(keys, foundBytes);
        usage.s3Gets += keys - found.size;
        return found;
      },
      record: async (pipeline, answers) => {
        await cache.record(pipeline, answers);
        let units = 0;
        let added = 0;
        for (const answer of answers) {
          const bytes = promptItemBytes(pipeline, answer);
          if (bytes > PROMPT_ITEM_MAX_BYTES) continue; // not cached: no item
          units += writeRequestUnits(bytes);
          added += stored.put(promptCacheItem(pipeline, answer));
        }
        usage.promptCacheWriteUnits = (usage.promptCacheWriteUnits ?? 0) + units;
        usage.dynamoBytesAdded = (usage.dynamoBytesAdded ?? 0) + added;
      },
    };
  }

  /**
   * Counts the chunk index's calls as the deployed DynamoDB index bills them, whichever index
   * the worker has (local: files), as the prompt cache's are (shared/cost/dynamo-request-units.ts).
   * The index keeps one item per document ({@link docIndexItem}: its chunks' 16-byte
   * fingerprints and where their vectors are, no vectors):
   * - lookups (BatchGetItem, eventually consistent): 0.5 read unit per distinct document not
   *   found, 0.5 per 4 KB of each item found, twice that for a `consistent` lookup
   *   (finalize's) ({@link UnitUsage.chunkIndexReadUnits});
   * - records (BatchWriteItem puts, one per document): ceil(item bytes / 1 KB) write units
   *   each ({@link UnitUsage.chunkIndexWriteUnits});
   * and what its items add to the runs table's storage ({@link UnitUsage.dynamoBytesAdded}):
   * items a lookup found are replaced, not added, and where the caller names the entries a
   * record replaces (an embed unit: as they were before its run), by those, so that neither a
   * unit too large for the tally's memory nor a retry that finds its first delivery's entries
   * counts a replaced entry as new. The vectors an unchanged chunk reuses are
   * read from an earlier run's part through the object store, metered there as S3 GETs.
   */
  chunkIndex(index: ChunkIndex): ChunkIndex {
    const usage = this.usage;
    const stored = new StoredItemTally();
    return {
      lookupDocs: async (pipeline, docIds, options) => {
        const found = await index.lookupDocs(pipeline, docIds, options);
        const bytes = [...found.values()].map((doc) => stored.found(docIndexItem(pipeline, doc)));
        usage.chunkIndexReadUnits =
          (usage.chunkIndexReadUnits ?? 0) +
          batchGetReadUnits(new Set(docIds).size, bytes, options?.consistent === true);
        return found;
      },
      record: async (pipeline, docs, replacing) => {
        await index.record(pipeline, docs, replacing);
        // One put per document, the last one named, as the deployed index sends them.
        const items = new Map<string, DynamoItem>();
        for (const doc of docs) items.set(doc.docId, docIndexItem(pipeline, doc));
        let added = 0;
        let units = 0;
        for (const [docId, item] of items) {
          units += writeRequestUnits(dynamoItemBytes(item));
          if (!replacing) {
            added += stored.put(item);
            continue;
          }
          const before = replacing.get(docId);
          added += stored.replace(item, before && docIndexItem(pipeline, before));
        }
        usage.chunkIndexWriteUnits = (usage.chunkIndexWriteUnits ?? 0) + units;
        usage.dynamoBytesAdded = (usage.dynamoBytesAdded ?? 0) + added;
      },
    };
  }

  /** Counts reads and writes of the run store (one request each). */
  runStore(runs: RunStore): RunStore {
    const usage = this.usage;
    const reads = new Set<keyof RunStore>(['getRun', 'listRuns', 'listUnits', 'getSummary', 'getUnit']);
    return new Proxy(runs, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        const name = property as keyof RunStore;
        return (...args: unknown[]) => {
          if (reads.has(name)) usage.runStoreReads += 1;
          else usage.runStoreWrites += 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }
}

/** A unit's state as finalize reads it: its attempts and the usage its last delivery stored. */
export interface UnitUsageSource {
  readonly attempts: number;
  readonly usage?: UnitUsage | undefined;
}

/** Bytes a response carries back per byte sent, for serverless data processed out (see runUsageOf). */
const RESPONSE_BYTES_PER_REQUEST_BYTE = 1;

/**
 * Adds up the units' usage into the run's, as AWS would bill it: Lambda GB-seconds per
 * delivery, SQS requests for the plan's sends and each delivery's receive and delete, and
 * the endpoint by hosting (a string is an instance type, as before issue 14):
 * - `instance`: one instance kept for the window from the run's first call to its last
 *   (finalize replaces this with the lease's copies x held time + cooldown for run-scoped
 *   capacity);
 * - `serverless`: GB-seconds = the calls' summed durations x the memory size, and the bytes
 *   sent, counted twice for the response (a vector or score line is not smaller than its
 *   input in JSON or CSV text; a rough upper bound, stated in the basis);
 * - `in-worker`: no endpoint.
 */
export function runUsageOf(
  units: readonly UnitUsageSource[],
  hosting: EndpointHosting | string | undefined,
): RunUsage {
  const endpoint: EndpointHosting | undefined =
    typeof hosting === 'string' ? { kind: 'instance', instanceType: hosting } : hosting;
  const totals = sumUnitUsage(units);
  const planSends = Math.ceil(units.length / 10);
  return {
    ...endpointUsage(endpoint, totals),
    lambdaGbSeconds: totals.gbSeconds,
    // One invocation per delivery, plus plan and finalize.
    lambdaRequests: totals.attempts + 2,
    // Plan's sends, each delivery's receive and delete, the units' own sends, finalize's message.
    sqsRequests: planSends + 2 * totals.attempts + totals.sends + 3,
    s3Puts: totals.s3Puts,
    s3Gets: totals.s3Gets,
    dynamoWrites: totals.writes,
    dynamoReads: totals.reads,
    bytesStored: totals.bytes,
    ...(totals.dynamoBytes > 0 ? { dynamoBytesStored: totals.dynamoBytes } : {}),
  };
}

/** The units' usage added up (deliveries counted even for a unit that stored no usage). */
export interface UnitUsageTotals {
  /** The endpoint's first and last call over all units (ms since the epoch; 0: none). */
  first: number;
  last: number;
  gbSeconds: number;
  attempts: number;
  s3Gets: number;
  s3Puts: number;
  bytes: number;
  sends: number;
  reads: number;
  writes: number;
  callMs: number;
  calls: number;
  endpointBytes: number;
  /** Bytes the units' DynamoDB items added to billed storage (see UnitUsage.dynamoBytesAdded). */
  dynamoBytes: number;
}

export function sumUnitUsage(units: readonly UnitUsageSource[]): UnitUsageTotals {
  const totals: UnitUsageTotals = {
    first: 0,
    last: 0,
    gbSeconds: 0,
    attempts: 0,
    s3Gets: 0,
    s3Puts: 0,
    bytes: 0,
    sends: 0,
    reads: 0,
    writes: 0,
    callMs: 0,
    calls: 0,
    endpointBytes: 0,
    dynamoBytes: 0,
  };
  for (const unit of units) {
    totals.attempts += unit.attempts;
    if (unit.usage) addUnitUsage(totals, unit.usage);
  }
  return totals;
}

function addUnitUsage(totals: UnitUsageTotals, u: UnitUsage): void {
  if (u.endpointFirstAt > 0 && (totals.first === 0 || u.endpointFirstAt < totals.first))
    totals.first = u.endpointFirstAt;
  if (u.endpointLastAt > totals.last) totals.last = u.endpointLastAt;
  totals.gbSeconds += (u.workerMs / 1000) * (u.memoryMiB / 1024);
  totals.s3Gets += u.s3Gets;
  totals.s3Puts += u.s3Puts;
  totals.bytes += u.bytesPut;
  totals.sends += u.queueSends;
  totals.reads += u.runStoreReads + (u.promptCacheReadUnits ?? 0) + (u.chunkIndexReadUnits ?? 0);
  totals.writes += u.runStoreWrites + (u.promptCacheWriteUnits ?? 0) + (u.chunkIndexWriteUnits ?? 0);
  totals.callMs += u.endpointCallMs;
  totals.calls += u.endpointCalls ?? 0;
  totals.endpointBytes += u.endpointBytes ?? 0;
  totals.dynamoBytes += u.dynamoBytesAdded ?? 0;
}

/** The endpoint's part of the run's usage, by where the model runs. */
function endpointUsage(
  endpoint: EndpointHosting | undefined,
  totals: UnitUsageTotals,
): Pick<
  RunUsage,
  'hosting' | 'instanceType' | 'endpointSeconds' | 'serverlessGbSeconds' | 'endpointBytes' | 'endpointCalls'
> {
  if (endpoint === undefined) return { endpointSeconds: 0 };
  if (endpoint.kind === 'instance') {
    const { first, last } = totals;
    const window = first > 0 && last > first ? (last - first) / 1000 : 0;
    return {
      hosting: 'instance',
      instanceType: endpoint.instanceType,
      endpointSeconds: window,
      endpointCalls: totals.calls,
    };
  }
  if (endpoint.kind === 'serverless')
    return {
      hosting: 'serverless',
      endpointSeconds: 0,
      serverlessGbSeconds: (totals.callMs / 1000) * (endpoint.memoryMiB / 1024),
      endpointBytes: totals.endpointBytes * (1 + RESPONSE_BYTES_PER_REQUEST_BYTE),
      endpointCalls: totals.calls,
    };
  return { hosting: 'in-worker', endpointSeconds: 0 };
}

/**
 * Adds finalize's own calls to the run's usage, and the writes still to come when the cost
 * is computed: `summary.json` and the `runs` row (two PUTs) and the run's move (one write).
 * Its chunk index calls (an incremental embed run's source comparison: where vanished
 * documents were last read, and their entries rewritten without chunks) are request units
 * and storage as a unit's are.
 */
export function withFinalizeCalls(usage: RunUsage, calls: UnitUsage): RunUsage {
  const dynamoBytes = (usage.dynamoBytesStored ?? 0) + (calls.dynamoBytesAdded ?? 0);
  return {
    ...usage,
    ...(usage.dynamoBytesStored !== undefined || calls.dynamoBytesAdded !== undefined
      ? { dynamoBytesStored: dynamoBytes }
      : {}),
    // Finalize's own duration, where it reports it in `workerMs` and `memoryMiB`.
    lambdaGbSeconds: usage.lambdaGbSeconds + (calls.workerMs / 1000) * (calls.memoryMiB / 1024),
    s3Gets: usage.s3Gets + calls.s3Gets,
    s3Puts: usage.s3Puts + calls.s3Puts + 2,
    dynamoReads: usage.dynamoReads + calls.runStoreReads + (calls.chunkIndexReadUnits ?? 0),
    dynamoWrites: usage.dynamoWrites + calls.runStoreWrites + 1 + (calls.chunkIndexWriteUnits ?? 0),
    bytesStored: usage.bytesStored + calls.bytesPut,
  };
}
