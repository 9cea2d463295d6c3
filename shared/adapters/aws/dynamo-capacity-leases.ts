import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type {
  CapacityLease,
  CapacityLeases,
  ComponentLeaseState,
  NewLease,
} from '../../ports/capacity-leases.ts';
import { isAwsError } from './aws-error.ts';

/**
 * Items in the runs table, beside the runs (same key names, `RUN#`-style prefixes):
 * - lease: pk=`CAPACITY#<component>`, sk=`LEASE#<runId>`
 * - component state: pk=`CAPACITY#<component>`, sk=`STATE` (`lastReleasedAt`, and
 *   `followedRelease`/`followedAt`: the first lease taken after the latest release)
 * A component's leases are one Query; none carries the runs index's key, so the
 * `byStartedAt` index never sees them.
 */
export const capacityPk = (component: string): string => `CAPACITY#${component}`;
const leaseKey = (component: string, runId: string) => ({ pk: capacityPk(component), sk: `LEASE#${runId}` });
const stateKey = (component: string) => ({ pk: capacityPk(component), sk: 'STATE' });

export interface DynamoCapacityLeasesOptions {
  /** Created once per process and injected (dynalite or a mock in tests). */
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
}

type Item = Record<string, unknown>;

/**
 * (secondary adapter) CapacityLeases in the runs table. Each guarantee is one conditional
 * write on one item, as in DynamoRunStore: a lease is put only if absent (a retried plan
 * keeps the first), released only if not yet released (a redelivered finalize or a racing
 * sweeper gets the first release back), and the component's `lastReleasedAt` only moves
 * forward. A release that dies between its two writes is repaired by the next release
 * call (it repeats the second) and, meanwhile, the sweeper reads the leases' own times.
 */
export class DynamoCapacityLeases implements CapacityLeases {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;

  constructor(options: DynamoCapacityLeasesOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
  }

  async take(lease: NewLease): Promise<CapacityLease> {
    const item: Item = {
      ...leaseKey(lease.component, lease.runId),
      runId: lease.runId,
      component: lease.component,
      copies: lease.copies,
      takenAt: lease.takenAt,
      ...(lease.onDemand ? { onDemand: true } : {}),
    };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      await this.noteFollowed(lease.component, lease.takenAt);
      return toLease(item);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
    const existing = await this.get(lease.component, lease.runId);
    if (!existing) throw new Error(`lease of run ${lease.runId} on ${lease.component} vanished while taken`);
    // A plan that died between its two writes: the retry records what the first did not.
    await this.noteFollowed(lease.component, existing.takenAt);
    return existing;
  }

  /** The first lease taken at or after the latest release records both (one conditional update). */
  private async noteFollowed(component: string, takenAt: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: stateKey(component),
          UpdateExpression: 'SET followedRelease = lastReleasedAt, followedAt = :t',
          ConditionExpression:
            'lastReleasedAt <= :t AND (attribute_not_exists(followedRelease) OR followedRelease < lastReleasedAt)',
          ExpressionAttributeValues: { ':t': takenAt },
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
  }

  async get(component: string, runId: string): Promise<CapacityLease | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: leaseKey(component, runId), ConsistentRead: true }),
    );
    return out.Item === undefined ? undefined : toLease(out.Item);
  }

  async list(component: string): Promise<CapacityLease[]> {
    const leases: CapacityLease[] = [];
    const pages = paginateQuery(
      { client: this.doc },
      {
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :lease)',
        ExpressionAttributeValues: { ':pk': capacityPk(component), ':lease': 'LEASE#' },
        ConsistentRead: true,
      },
    );
    for await (const page of pages) for (const item of page.Items ?? []) leases.push(toLease(item));
    return leases;
  }

  async markReady(component: string, runId: string, readyAt: string): Promise<void> {
    await this.updateIf(component, runId, {
      UpdateExpression: 'SET readyAt = :t',
      ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(readyAt)',
      ExpressionAttributeValues: { ':t': readyAt },
    });
  }

  async markNeeded(component: string, runId: string, neededAt: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: leaseKey(component, runId),
          UpdateExpression: 'SET neededAt = :t',
          ConditionExpression:
            'attribute_exists(pk) AND onDemand = :yes AND attribute_not_exists(neededAt) AND attribute_not_exists(releasedAt)',
          ExpressionAttributeValues: { ':t': neededAt, ':yes': true },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      return false;
    }
  }

  async markRaised(component: string, runId: string, neededAt: string, raisedAt: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: leaseKey(component, runId),
          UpdateExpression: 'SET raisedAt = :t',
          ConditionExpression:
            'attribute_exists(pk) AND onDemand = :yes AND neededAt = :n AND attribute_not_exists(raisedAt) AND attribute_not_exists(releasedAt)',
          ExpressionAttributeValues: { ':t': raisedAt, ':n': neededAt, ':yes': true },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      return false;
    }
  }

  async markProgress(component: string, runId: string, terminalUnits: number, at: string): Promise<void> {
    await this.updateIf(component, runId, {
      UpdateExpression: 'SET seenTerminalUnits = :n, progressAt = :t',
      ConditionExpression:
        'attribute_exists(pk) AND attribute_not_exists(releasedAt) AND (attribute_not_exists(progressAt) OR progressAt <= :t)',
      ExpressionAttributeValues: { ':n': terminalUnits, ':t': at },
    });
  }

  async release(
    component: string,
    runId: string,
    releasedAt: string,
    by: 'finalize' | 'sweeper',
  ): Promise<CapacityLease | undefined> {
    let lease: CapacityLease | undefined;
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: leaseKey(component, runId),
          UpdateExpression: 'SET releasedAt = :t, releasedBy = :by',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(releasedAt)',
          ExpressionAttributeValues: { ':t': releasedAt, ':by': by },
          ReturnValues: 'ALL_NEW',
        }),
      );
      lease = out.Attributes === undefined ? undefined : toLease(out.Attributes);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      lease = await this.get(component, runId);
    }
    if (lease?.releasedAt === undefined) return undefined;
    await this.moveLastReleased(component, lease.releasedAt);
    return lease;
  }

  async renew(
    released: CapacityLease,
    takenAt: string,
    priorSeconds: number,
  ): Promise<CapacityLease | undefined> {
    if (released.releasedAt === undefined) return this.get(released.component, released.runId);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: leaseKey(released.component, released.runId),
          UpdateExpression:
            'SET takenAt = :t, priorSeconds = :p REMOVE releasedAt, releasedBy, readyAt, neededAt, raisedAt, seenTerminalUnits, progressAt',
          ConditionExpression: 'releasedAt = :r',
          ExpressionAttributeValues: { ':t': takenAt, ':p': priorSeconds, ':r': released.releasedAt },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes === undefined ? undefined : toLease(out.Attributes);
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      return this.get(released.component, released.runId);
    }
  }

  async forget(component: string, runId: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: leaseKey(component, runId),
          ConditionExpression: 'attribute_exists(releasedAt)',
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
  }

  async state(component: string): Promise<ComponentLeaseState> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: stateKey(component), ConsistentRead: true }),
    );
    const last = out.Item?.lastReleasedAt;
    const followedRelease = out.Item?.followedRelease;
    const followedAt = out.Item?.followedAt;
    return {
      component,
      ...(typeof last === 'string' ? { lastReleasedAt: last } : {}),
      ...(typeof followedRelease === 'string' && typeof followedAt === 'string'
        ? { followedRelease, followedAt }
        : {}),
    };
  }

  /** `lastReleasedAt` only moves forward (ISO 8601 times of one format compare as strings). */
  private async moveLastReleased(component: string, releasedAt: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: stateKey(component),
          UpdateExpression: 'SET lastReleasedAt = :t, component = :c',
          ConditionExpression: 'attribute_not_exists(lastReleasedAt) OR lastReleasedAt < :t',
          ExpressionAttributeValues: { ':t': releasedAt, ':c': component },
        }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
  }

  /** A conditional update of a lease whose refusal means "already done" or "no such lease". */
  private async updateIf(
    component: string,
    runId: string,
    update: {
      UpdateExpression: string;
      ConditionExpression: string;
      ExpressionAttributeValues: Record<string, unknown>;
    },
  ): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({ TableName: this.tableName, Key: leaseKey(component, runId), ...update }),
      );
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
    }
  }
}

function isConditionFailed(error: unknown): boolean {
  return isAwsError(error, 'ConditionalCheckFailedException');
}

function toLease(item: Item): CapacityLease {
  const optional = <K extends string>(key: K, kind: 'string' | 'number' | 'boolean') =>
    typeof item[key] === kind ? { [key]: item[key] } : {};
  return {
    runId: String(item.runId),
    component: String(item.component),
    copies: Number(item.copies),
    takenAt: String(item.takenAt),
    ...optional('readyAt', 'string'),
    ...optional('releasedAt', 'string'),
    ...optional('releasedBy', 'string'),
    ...optional('seenTerminalUnits', 'number'),
    ...optional('progressAt', 'string'),
    ...optional('priorSeconds', 'number'),
    ...optional('onDemand', 'boolean'),
    ...optional('neededAt', 'string'),
    ...optional('raisedAt', 'string'),
  } as CapacityLease;
}
