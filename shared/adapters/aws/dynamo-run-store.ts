import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  pendingUnitState,
  type RunState,
  type RunStatus,
  type RunSummary,
  type RunTrigger,
  type UnitCounts,
  type UnitState,
  type UnitStatus,
  type WorkUnit,
} from '../../domain/types.ts';
import { TransitionConflict } from '../../errors/errors.ts';
import type {
  ListRunsOptions,
  ListUnitsOptions,
  RunReopening,
  RunStore,
  StageStart,
  StoredUnit,
  UnitCompletion,
} from '../../ports/run-store.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { isAwsError } from './aws-error.ts';
import type { Sleep } from './backoff.ts';
import { type BatchResendOptions, batchPutResending } from './dynamo-batch.ts';

/**
 * Table layout (single table). Infrastructure and test tables are built from these names.
 * - run item:  pk=`RUN#<runId>`, sk=`RUN`, gsi1pk=`RUNS`, gsi1sk=`<startedAt>#<runId>`
 * - unit item: pk=`RUN#<runId>`, sk=`UNIT#<unitId>`
 */
export const RUNS_TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk' } as const;
export const RUNS_BY_STARTED_AT_INDEX = {
  indexName: 'byStartedAt',
  partitionKey: 'gsi1pk',
  sortKey: 'gsi1sk',
  /**
   * Non-key attributes listRuns reads. Project these (INCLUDE) rather than ALL: the run
   * item's `countedUnitIds` set grows with every unit and need not be copied to the index.
   * So the index lacks `stage`, `stages`, `workPool` and `splitStack` (UNINDEXED_RUN_ATTRIBUTES),
   * which listRuns reads from the run items when asked (`withPlan`). Not projected here:
   * CloudFormation does not update a GSI's projection in place, and DynamoDB creates or
   * deletes one GSI per table update, so a wider projection would be a new index under a
   * new name, deployed in two steps, with every CLI user's IAM policy naming it again.
   */
  projectedAttributes: [
    'runId',
    'pipeline',
    'trigger',
    'startedAt',
    'inputs',
    'task',
    'status',
    'finishedAt',
    'totalUnits',
    'doneUnits',
    'failedUnits',
  ],
} as const;

/** The run item attributes `byStartedAt` does not project: what plan records for the run's work. */
const UNINDEXED_RUN_ATTRIBUTES = ['stage', 'stages', 'workPool', 'splitStack'] as const;
const UNINDEXED_RUN_PROJECTION = {
  ProjectionExpression: UNINDEXED_RUN_ATTRIBUTES.map((_, i) => `#p${i}`).join(', '),
  ExpressionAttributeNames: Object.fromEntries(UNINDEXED_RUN_ATTRIBUTES.map((name, i) => [`#p${i}`, name])),
};
/** GetItems in flight while listRuns completes a list `withPlan` (50 runs by default in `status --deployed`). */
const PLAN_READS_IN_FLIGHT = 8;

export interface DynamoRunStoreOptions {
  /** Created once per process and injected, so tests can point it at dynalite or a mock. */
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  /**
   * BatchWriteItem calls per chunk of 25 units, counting the first, while DynamoDB keeps
   * returning UnprocessedItems.
   * @default 8
   */
  readonly maxBatchWriteAttempts?: number;
  /** @default 50 */
  readonly baseDelayMs?: number;
  /** @default 2000 */
  readonly maxDelayMs?: number;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
}

/** BatchWriteItem takes at most 25 puts; a few chunks in flight keep large plans fast. */
const BATCH_WRITE_SIZE = 25;
const BATCH_WRITE_CONCURRENCY = 4;

const TERMINAL: readonly UnitStatus[] = ['succeeded', 'failed'];

type Item = Record<string, unknown>;

/**
 * (secondary adapter) RunStore over one DynamoDB table. Every exactly-once guarantee is a
 * conditional write on a single item, so it needs no transactions (dynalite has none, and
 * local mode runs this same code against it):
 *
 * 1. A unit's terminal transition is a conditional update of the unit item
 *    (`status` not yet terminal). The winner is the one `recorded` completion.
 * 2. The unit is then counted on the run item with `ADD terminalUnits 1, doneUnits|failedUnits 1,
 *    countedUnitIds {unitId}` under `NOT contains(countedUnitIds, unitId)`, so counting is
 *    idempotent. A redelivery after a crash between 1 and 2 repeats 2 and repairs the count;
 *    with a transaction spanning 1 and 2 a crash before step 3 would strand the run instead.
 * 3. `finishedRun` is a claim: `SET finalizeClaimedBy` under
 *    `terminalUnits = totalUnits AND attribute_not_exists(finalizeClaimedBy)`. Exactly one
 *    caller wins it, however many units finish at once.
 *
 * Redrive (`reopenFailedRun`) walks the same steps back: each failed unit item goes back to
 * `pending` (conditional on `failed`), is uncounted under `contains(countedUnitIds, unitId)`,
 * and last the run item moves from `failed` to `running` (conditional), which one caller wins.
 *
 * Limits: `countedUnitIds` lives on the run item (400 KB), enough for tens of thousands of
 * units with short ids; each unit item keeps its descriptor as JSON (at most 64 KiB, see
 * unit-limits), well inside the 400 KB item limit.
 */
export class DynamoRunStore implements RunStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly resend: BatchResendOptions;

  constructor(options: DynamoRunStoreOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.resend = {
      maxAttempts: options.maxBatchWriteAttempts,
      baseDelayMs: options.baseDelayMs,
      maxDelayMs: options.maxDelayMs,
      sleep: options.sleep,
      random: options.random,
    };
  }

  /**
   * Writes the unit items first and the run item last (conditionally), so a run is only
   * visible once all of its units exist; a failed plan leaves orphan units, not a run that
   * can never finish.
   */
  async createRun(run: RunState, units: readonly WorkUnit[]): Promise<void> {
    if (run.totalUnits !== units.length) {
      throw new RangeError(
        `run ${run.runId} says totalUnits=${run.totalUnits} but has ${units.length} units`,
      );
    }
    const seen = new Set<string>();
    for (const unit of units) {
      if (unit.runId !== run.runId) throw new RangeError(`unit ${unit.unitId} belongs to run ${unit.runId}`);
      if (seen.has(unit.unitId))
        throw new RangeError(`unit id ${unit.unitId} appears twice in run ${run.runId}`);
      seen.add(unit.unitId);
    }

    const chunks: Item[][] = [];
    for (let i = 0; i < units.length; i += BATCH_WRITE_SIZE) {
      chunks.push(units.slice(i, i + BATCH_WRITE_SIZE).map((unit) => unitItem(unit)));
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < chunks.length) {
        const chunk = chunks[next++];
        if (chunk !== undefined) await this.batchPut(chunk);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_WRITE_CONCURRENCY, chunks.length) }, worker));

    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: runItem(run),
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (error) {
      if (isConditionFailed(error)) {
        throw new TransitionConflict(`run ${run.runId} already exists`, { cause: error });
      }
      throw error;
    }
  }

  async getRun(runId: string): Promise<RunState | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: runKey(runId), ConsistentRead: true }),
    );
    return out.Item === undefined ? undefined : toRunState(out.Item);
  }

  /**
   * Newest first. The index is eventually consistent: a run created a moment ago may be missing.
   * `withPlan` reads the attributes the index does not hold from each run item (one small
   * eventually consistent GetItem a run, the permission `status --deployed` already has),
   * rather than the whole item with its growing `countedUnitIds`.
   */
  async listRuns(limit?: number, options: ListRunsOptions = {}): Promise<RunState[]> {
    const runs: Item[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: RUNS_BY_STARTED_AT_INDEX.indexName,
          KeyConditionExpression: '#gpk = :runs',
          ExpressionAttributeNames: { '#gpk': RUNS_BY_STARTED_AT_INDEX.partitionKey },
          ExpressionAttributeValues: { ':runs': 'RUNS' },
          ScanIndexForward: false,
          ...(limit === undefined ? {} : { Limit: limit - runs.length }),
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      );
      runs.push(...(out.Items ?? []));
      startKey = out.LastEvaluatedKey;
    } while (startKey !== undefined && (limit === undefined || runs.length < limit));
    if (!options.withPlan) return runs.map(toRunState);
    return mapWithConcurrency(runs, PLAN_READS_IN_FLIGHT, async (indexed) => {
      const out = await this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: runKey(String(indexed.runId)),
          ...UNINDEXED_RUN_PROJECTION,
        }),
      );
      // A run deleted since the index listed it keeps what the index said.
      return toRunState({ ...indexed, ...out.Item });
    });
  }

  /** Units in unit id order, read consistently; descriptors are only read when asked for. */
  async listUnits(runId: string, options: ListUnitsOptions = {}): Promise<StoredUnit[]> {
    const units: StoredUnit[] = [];
    const pages = paginateQuery(
      { client: this.doc },
      {
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :unit)',
        ExpressionAttributeValues: { ':pk': runPk(runId), ':unit': 'UNIT#' },
        ConsistentRead: true,
        ...(options.withDescriptors ? {} : UNIT_STATE_PROJECTION),
      },
    );
    for await (const page of pages)
      for (const item of page.Items ?? [])
        units.push(options.withDescriptors ? toStoredUnit(item) : toUnitState(item));
    return units;
  }

  async startUnit(runId: string, unitId: string): Promise<UnitState | undefined> {
    const key = unitKey(runId, unitId);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET attempts = if_not_exists(attempts, :zero) + :one, #status = :running',
          ConditionExpression: 'attribute_exists(pk) AND NOT (#status IN (:succeeded, :failed))',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':zero': 0,
            ':one': 1,
            ':running': 'running',
            ':succeeded': 'succeeded',
            ':failed': 'failed',
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes === undefined ? undefined : toUnitState(out.Attributes);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
    // Missing or already terminal: still count the delivery, never revive the unit.
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET attempts = if_not_exists(attempts, :zero) + :one',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':zero': 0, ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes === undefined ? undefined : toUnitState(out.Attributes);
    } catch (error) {
      if (isConditionFailed(error)) return undefined;
      throw error;
    }
  }

  async completeUnit(
    runId: string,
    unitId: string,
    result: { counts: UnitCounts; actualCost: number; outputKeys: string[] },
  ): Promise<UnitCompletion> {
    return this.finishUnit(runId, unitId, 'succeeded', {
      UpdateExpression:
        'SET #status = :status, #counts = :counts, actualCost = :actualCost, #records = :records, outputKeys = :outputKeys',
      ExpressionAttributeNames: { '#counts': 'counts', '#records': 'records' },
      ExpressionAttributeValues: {
        ':counts': { ...result.counts },
        ':actualCost': result.actualCost,
        ':records': result.counts.records,
        ':outputKeys': [...result.outputKeys],
      },
    });
  }

  /** Does nothing when the unit does not exist (no item is created). */
  async recordUnitError(runId: string, unitId: string, error: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: unitKey(runId, unitId),
          UpdateExpression: 'SET lastError = :error',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':error': error },
        }),
      );
    } catch (caught) {
      if (!isConditionFailed(caught)) throw caught;
    }
  }

  async failUnit(runId: string, unitId: string, error: string): Promise<UnitCompletion> {
    return this.finishUnit(runId, unitId, 'failed', {
      UpdateExpression: 'SET #status = :status, lastError = :error',
      ExpressionAttributeNames: {},
      ExpressionAttributeValues: { ':error': error },
    });
  }

  async finishRun(runId: string, summary: RunSummary): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: 'SET #status = :status, finishedAt = :finishedAt, summary = :summary',
          ConditionExpression: '#status = :running',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':status': summary.status,
            ':finishedAt': summary.finishedAt,
            // The summary is plain JSON (it is also summary.json); the round trip drops
            // undefined fields, which the document client would otherwise refuse.
            ':summary': JSON.parse(JSON.stringify(summary)),
            ':running': 'running',
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw error;
    }
  }

  async getSummary(runId: string): Promise<RunSummary | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: runKey(runId),
        ConsistentRead: true,
        ProjectionExpression: 'summary',
      }),
    );
    return (out.Item?.summary as RunSummary | undefined) ?? undefined;
  }

  /** Steps 1-3 of the class comment for either terminal status. */
  /**
   * Two conditional writes, each safe to repeat: the unit item is put only if absent (an
   * earlier attempt's continuation wins and is returned), then the run counts it under
   * `NOT contains(addedUnitIds, unitId)` while it is still running. A crash between the
   * two is repaired by the retry, which finds the item and counts it.
   */
  async getUnit(runId: string, unitId: string): Promise<StoredUnit | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: unitKey(runId, unitId), ConsistentRead: true }),
    );
    return out.Item ? toStoredUnit(out.Item) : undefined;
  }

  async addContinuation(runId: string, unit: WorkUnit): Promise<WorkUnit> {
    let stored = unit;
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: unitItem(unit),
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const out = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: unitKey(runId, unit.unitId), ConsistentRead: true }),
      );
      const existing = out.Item ? toStoredUnit(out.Item).descriptor : undefined;
      if (!existing)
        throw new TransitionConflict(`unit ${runId}/${unit.unitId} exists without its descriptor`, {
          cause: error,
        });
      stored = existing;
    }
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: 'ADD totalUnits :one, addedUnitIds :ids',
          ConditionExpression: '#status = :running AND NOT contains(addedUnitIds, :unitId)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':one': 1,
            ':ids': new Set([unit.unitId]),
            ':running': 'running',
            ':unitId': unit.unitId,
          },
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const run = await this.getRun(runId);
      if (run?.status !== 'running')
        throw new TransitionConflict(`run ${runId} is ${run?.status ?? 'missing'}: no unit can be added`, {
          cause: error,
        });
      // Already counted by an earlier attempt.
    }
    return stored;
  }

  /**
   * One conditional update of the run item: `stage` (absent on runs stored before stages,
   * which are in whatever stage the caller names) must still be `from`.
   */
  async startStage(runId: string, stage: StageStart): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: 'SET #stage = :to ADD totalUnits :count REMOVE finalizeClaimedBy',
          ConditionExpression: '#status = :running AND (#stage = :from OR attribute_not_exists(#stage))',
          ExpressionAttributeNames: { '#status': 'status', '#stage': 'stage' },
          ExpressionAttributeValues: {
            ':to': stage.to,
            ':from': stage.from,
            ':count': stage.unitCount,
            ':running': 'running',
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw error;
    }
  }

  /** Batch puts of the units not stored yet (their ids read first, without descriptors). */
  async addStageUnits(runId: string, units: readonly WorkUnit[]): Promise<void> {
    const stored = new Set((await this.listUnits(runId)).map((unit) => unit.unitId));
    const missing = units.filter((unit) => !stored.has(unit.unitId)).map((unit) => unitItem(unit));
    for (let i = 0; i < missing.length; i += BATCH_WRITE_SIZE)
      await this.batchPut(missing.slice(i, i + BATCH_WRITE_SIZE));
  }

  private async finishUnit(
    runId: string,
    unitId: string,
    status: 'succeeded' | 'failed',
    update: {
      UpdateExpression: string;
      ExpressionAttributeNames: Record<string, string>;
      ExpressionAttributeValues: Record<string, unknown>;
    },
  ): Promise<UnitCompletion> {
    let recorded = true;
    let terminalStatus: UnitStatus = status;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: unitKey(runId, unitId),
          UpdateExpression: update.UpdateExpression,
          ConditionExpression: 'attribute_exists(pk) AND NOT (#status IN (:succeeded, :failed))',
          ExpressionAttributeNames: { ...update.ExpressionAttributeNames, '#status': 'status' },
          ExpressionAttributeValues: {
            ...update.ExpressionAttributeValues,
            ':status': status,
            ':succeeded': 'succeeded',
            ':failed': 'failed',
          },
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      const current = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: unitKey(runId, unitId), ConsistentRead: true }),
      );
      if (current.Item === undefined) {
        throw new TransitionConflict(`unit ${unitId} of run ${runId} does not exist`, { cause: error });
      }
      recorded = false;
      terminalStatus = current.Item.status as UnitStatus;
      if (!TERMINAL.includes(terminalStatus)) throw error; // cannot happen: statuses only move forward
    }
    const unitStatus = terminalStatus as 'succeeded' | 'failed';

    const run = await this.countTerminalUnit(runId, unitId, terminalStatus === 'succeeded');
    // Skip the claim when the count just read says the run is not done (saves a failed write).
    if (run !== undefined && Number(run.terminalUnits) < Number(run.totalUnits)) {
      return { recorded, finishedRun: false, unitStatus };
    }
    return { recorded, finishedRun: await this.claimFinalize(runId, unitId), unitStatus };
  }

  async reopenFailedRun(runId: string): Promise<RunReopening> {
    const run = await this.getRun(runId);
    if (run?.status !== 'failed') return { reopened: false, units: [] };
    // Pending units in a failed run are failed units an interrupted redrive already reset.
    const units = (await this.listUnits(runId, { withDescriptors: true })).filter(
      (u) => u.status === 'failed' || u.status === 'pending',
    );
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < units.length) {
        const unit = units[next++]!;
        if (unit.status === 'failed') await this.resetFailedUnit(runId, unit.unitId);
        await this.uncountFailedUnit(runId, unit.unitId);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_WRITE_CONCURRENCY, units.length) }, worker));
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: 'SET #status = :running, finishedAt = :null REMOVE finalizeClaimedBy, summary',
          ConditionExpression: '#status = :failed',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':running': 'running', ':failed': 'failed', ':null': null },
        }),
      );
    } catch (error) {
      if (isConditionFailed(error)) return { reopened: false, units: [] };
      throw error;
    }
    return { reopened: true, units: units.map((u) => ({ ...u, status: 'pending' })) };
  }

  /** Redrive step 1: the unit item back to pending; a unit another caller reset already is left alone. */
  private async resetFailedUnit(runId: string, unitId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: unitKey(runId, unitId),
          UpdateExpression: 'SET #status = :pending',
          ConditionExpression: '#status = :failed',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':pending': 'pending', ':failed': 'failed' },
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
  }

  /** Redrive step 2: takes the unit out of the run's counts, once (the reverse of countTerminalUnit). */
  private async uncountFailedUnit(runId: string, unitId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: 'ADD terminalUnits :minusOne, failedUnits :minusOne DELETE countedUnitIds :ids',
          ConditionExpression: 'contains(countedUnitIds, :unitId)',
          ExpressionAttributeValues: { ':minusOne': -1, ':ids': new Set([unitId]), ':unitId': unitId },
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
  }

  /** Step 2: idempotent. Returns the run item after counting, or undefined if it was counted before. */
  private async countTerminalUnit(
    runId: string,
    unitId: string,
    succeeded: boolean,
  ): Promise<Item | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: `ADD terminalUnits :one, ${succeeded ? 'doneUnits' : 'failedUnits'} :one, countedUnitIds :ids`,
          ConditionExpression: 'attribute_exists(pk) AND NOT contains(countedUnitIds, :unitId)',
          ExpressionAttributeValues: { ':one': 1, ':ids': new Set([unitId]), ':unitId': unitId },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes;
    } catch (error) {
      if (isConditionFailed(error)) return undefined;
      throw error;
    }
  }

  /** Step 3: true for the one caller that sees every unit counted first. */
  private async claimFinalize(runId: string, unitId: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(runId),
          UpdateExpression: 'SET finalizeClaimedBy = :unitId',
          ConditionExpression: 'terminalUnits = totalUnits AND attribute_not_exists(finalizeClaimedBy)',
          ExpressionAttributeValues: { ':unitId': unitId },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw error;
    }
  }

  /** Puts one chunk, resending UnprocessedItems (throttled partitions) with backoff. */
  private async batchPut(items: readonly Item[]): Promise<void> {
    const target = { doc: this.doc, tableName: this.tableName, label: 'unit items unprocessed' };
    await batchPutResending(target, items, this.resend);
  }
}

function isConditionFailed(error: unknown): boolean {
  return isAwsError(error, 'ConditionalCheckFailedException');
}

const runPk = (runId: string): string => `RUN#${runId}`;
const runKey = (runId: string) => ({ pk: runPk(runId), sk: 'RUN' });
const unitKey = (runId: string, unitId: string) => ({ pk: runPk(runId), sk: `UNIT#${unitId}` });

function runItem(run: RunState): Item {
  return {
    ...runKey(run.runId),
    gsi1pk: 'RUNS',
    gsi1sk: `${run.startedAt}#${run.runId}`,
    runId: run.runId,
    pipeline: run.pipeline,
    trigger: run.trigger,
    startedAt: run.startedAt,
    inputs: [...run.inputs],
    ...(run.task === undefined ? {} : { task: run.task }),
    ...(run.stage === undefined ? {} : { stage: run.stage }),
    ...(run.stages === undefined ? {} : { stages: [...run.stages] }),
    ...(run.workPool === undefined ? {} : { workPool: run.workPool }),
    ...(run.splitStack === undefined ? {} : { splitStack: run.splitStack }),
    status: run.status,
    finishedAt: run.finishedAt,
    totalUnits: run.totalUnits,
    doneUnits: run.doneUnits,
    failedUnits: run.failedUnits,
    terminalUnits: run.doneUnits + run.failedUnits,
  };
}

function unitItem(unit: WorkUnit): Item {
  return {
    ...unitKey(unit.runId, unit.unitId),
    ...pendingUnitState(unit),
    // JSON, not a map: optional fields stay absent and numbers keep their exact value.
    descriptor: JSON.stringify(unit),
  };
}

/** Every unit attribute but the descriptor, for the reads that do not need it. */
const UNIT_STATE_ATTRIBUTES = [
  'unitId',
  'stage',
  'sourceKey',
  'sourceVersion',
  'byteStart',
  'byteEnd',
  'estCost',
  'packedFiles',
  'actualCost',
  'records',
  'status',
  'attempts',
  'lastError',
  'counts',
  'outputKeys',
] as const;
const UNIT_STATE_PROJECTION = {
  ProjectionExpression: UNIT_STATE_ATTRIBUTES.map((_, i) => `#a${i}`).join(', '),
  ExpressionAttributeNames: Object.fromEntries(UNIT_STATE_ATTRIBUTES.map((name, i) => [`#a${i}`, name])),
};

function toStoredUnit(item: Item): StoredUnit {
  const state = toUnitState(item);
  return typeof item.descriptor === 'string'
    ? { ...state, descriptor: JSON.parse(item.descriptor) as WorkUnit }
    : state;
}

function toRunState(item: Item): RunState {
  return {
    runId: String(item.runId),
    pipeline: String(item.pipeline),
    trigger: item.trigger as RunTrigger,
    startedAt: String(item.startedAt),
    inputs: Array.isArray(item.inputs) ? item.inputs.map(String) : [],
    ...(item.task === 'fit' ? { task: 'fit' as const } : {}),
    ...(typeof item.stage === 'string' ? { stage: item.stage } : {}),
    ...(Array.isArray(item.stages) ? { stages: item.stages.map(String) } : {}),
    // Absent on runs planned before the pool was recorded; anything else is not a pool.
    ...(item.workPool === 'endpoint' || item.workPool === 'compute' ? { workPool: item.workPool } : {}),
    ...(typeof item.splitStack === 'boolean' ? { splitStack: item.splitStack } : {}),
    status: item.status as RunStatus,
    finishedAt: item.finishedAt == null ? null : String(item.finishedAt),
    totalUnits: Number(item.totalUnits ?? 0),
    doneUnits: Number(item.doneUnits ?? 0),
    failedUnits: Number(item.failedUnits ?? 0),
  };
}

function toUnitState(item: Item): UnitState {
  return {
    unitId: String(item.unitId),
    ...(typeof item.stage === 'string' ? { stage: item.stage } : {}),
    sourceKey: String(item.sourceKey),
    ...(typeof item.sourceVersion === 'string' ? { sourceVersion: item.sourceVersion } : {}),
    byteStart: Number(item.byteStart),
    byteEnd: Number(item.byteEnd),
    estCost: Number(item.estCost),
    packedFiles: Number(item.packedFiles ?? 0),
    actualCost: item.actualCost == null ? null : Number(item.actualCost),
    records: item.records == null ? null : Number(item.records),
    status: item.status as UnitStatus,
    attempts: Number(item.attempts ?? 0),
    lastError: item.lastError == null ? null : String(item.lastError),
    counts: item.counts == null ? null : (item.counts as UnitCounts),
    outputKeys: Array.isArray(item.outputKeys) ? item.outputKeys.map(String) : [],
  };
}
