import { ChangeMessageVisibilityBatchCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';

/**
 * When a failed message comes back: `min(maxSeconds, baseSeconds * 2^(receiveCount - 1))`,
 * so with the defaults and `maxReceiveCount` 5 the retries come 30 s, 1, 2 and 4 min after
 * each failure and the message is dead-lettered about 7.5 min after its first delivery
 * (plus the time the attempts ran), instead of one whole visibility timeout (an hour for
 * work, 90 min for plan and finalize) per retry.
 */
export interface RedeliverySchedule {
  /** @default 30 */
  readonly baseSeconds?: number;
  /** SQS allows up to 12 hours. @default 900 */
  readonly maxSeconds?: number;
}

/** SQS limits a message's visibility timeout to 12 hours. */
const SQS_MAX_VISIBILITY_SECONDS = 12 * 60 * 60;

/**
 * Seconds a message failed on its `receiveCount`-th delivery stays hidden before SQS
 * delivers it again. Exponential and deterministic: every unit of a run that fails for one
 * cause (an endpoint outage) comes back after the same wait, long enough for most outages
 * to pass, and a message that keeps failing reaches its DLQ in minutes.
 */
export function redeliveryDelaySeconds(receiveCount: number, schedule: RedeliverySchedule = {}): number {
  const base = schedule.baseSeconds ?? 30;
  const max = Math.min(schedule.maxSeconds ?? 900, SQS_MAX_VISIBILITY_SECONDS);
  const retry = Math.max(0, Math.floor(receiveCount) - 1);
  return Math.max(0, Math.min(max, Math.round(base * 2 ** Math.min(retry, 30))));
}

/** A message a handler failed, as Lambda's SQS event names it. */
export interface FailedDelivery {
  /** The queue's ARN (`eventSourceARN` of the SQS record). */
  readonly queueArn: string;
  readonly receiptHandle: string;
  /** `ApproximateReceiveCount`: 1 on the first delivery. */
  readonly receiveCount: number;
}

/** Schedules the next delivery of failed messages. */
export interface Redelivery {
  /** Seconds a message failed on its `receiveCount`-th delivery stays hidden. */
  delayFor(receiveCount: number): number;
  /**
   * Hides each failed message for its backoff. Best effort: a message it could not
   * reschedule comes back after its queue's visibility timeout, as without it; the
   * returned count says how many were rescheduled.
   */
  postpone(
    failed: readonly FailedDelivery[],
  ): Promise<{ readonly postponed: number; readonly errors: string[] }>;
}

export interface SqsRedeliveryOptions extends RedeliverySchedule {
  /** Created once per process and injected, so tests can swap it. */
  readonly client: SQSClient;
  /**
   * Queue URL of a queue ARN.
   * @default SQS `GetQueueUrl` by the ARN's queue name and account, once per queue per process
   */
  readonly queueUrlOf?: (queueArn: string) => Promise<string> | string;
}

/** SQS takes at most ten entries per ChangeMessageVisibilityBatch. */
const BATCH_ENTRIES = 10;

/**
 * (secondary adapter) Redelivery over SQS `ChangeMessageVisibilityBatch`: after a Lambda
 * SQS handler reports failed records, each is hidden for its own backoff
 * ({@link redeliveryDelaySeconds}) instead of the queue's visibility timeout, which must
 * stay long (6x the function timeout) for the messages that are still being worked on.
 * Lambda's event source mapping does not touch the visibility of a message reported in
 * `batchItemFailures`, so the change made here holds.
 */
export class SqsRedelivery implements Redelivery {
  private readonly client: SQSClient;
  private readonly schedule: RedeliverySchedule;
  private readonly queueUrlOf: (queueArn: string) => Promise<string> | string;

  constructor(options: SqsRedeliveryOptions) {
    this.client = options.client;
    this.schedule = options;
    this.queueUrlOf = options.queueUrlOf ?? ((arn) => this.lookUpQueueUrl(arn));
  }

  private readonly queueUrls = new Map<string, Promise<string>>();

  /**
   * Asks SQS rather than building the URL from the ARN: the URL's form differs between AWS
   * (`https://sqs.<region>.amazonaws.com/...`) and local servers, and GetQueueUrl is what the
   * consuming function's grant already allows. Cached per queue; a failed lookup is not.
   */
  private lookUpQueueUrl(queueArn: string): Promise<string> {
    let url = this.queueUrls.get(queueArn);
    if (url === undefined) {
      const { account, name } = parseQueueArn(queueArn);
      url = (async () => {
        const out = await this.client.send(
          new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account }),
        );
        if (!out.QueueUrl) throw new Error(`GetQueueUrl returned no URL for ${queueArn}`);
        return out.QueueUrl;
      })();
      this.queueUrls.set(queueArn, url);
      url.catch(() => this.queueUrls.delete(queueArn));
    }
    return url;
  }

  delayFor(receiveCount: number): number {
    return redeliveryDelaySeconds(receiveCount, this.schedule);
  }

  async postpone(failed: readonly FailedDelivery[]): Promise<{ postponed: number; errors: string[] }> {
    const byQueue = new Map<string, FailedDelivery[]>();
    for (const delivery of failed) {
      const list = byQueue.get(delivery.queueArn) ?? [];
      byQueue.set(delivery.queueArn, [...list, delivery]);
    }
    let postponed = 0;
    const errors: string[] = [];
    for (const [queueArn, deliveries] of byQueue) {
      let queueUrl: string;
      try {
        queueUrl = await this.queueUrlOf(queueArn);
      } catch (error) {
        errors.push(`${queueArn}: ${(error as Error).message}`);
        continue;
      }
      for (let i = 0; i < deliveries.length; i += BATCH_ENTRIES) {
        const batch = deliveries.slice(i, i + BATCH_ENTRIES);
        try {
          const out = await this.client.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: queueUrl,
              Entries: batch.map((delivery, index) => ({
                Id: String(index),
                ReceiptHandle: delivery.receiptHandle,
                VisibilityTimeout: this.delayFor(delivery.receiveCount),
              })),
            }),
          );
          postponed += out.Successful?.length ?? 0;
          for (const failure of out.Failed ?? [])
            errors.push(`${queueArn}: ${failure.Code ?? 'error'}: ${failure.Message ?? ''}`.trim());
        } catch (error) {
          errors.push(`${queueArn}: ${(error as Error).name}: ${(error as Error).message}`);
        }
      }
    }
    return { postponed, errors };
  }
}

/**
 * The parts of a queue ARN (`arn:<partition>:sqs:<region>:<account>:<name>`).
 *
 * @throws Error when the ARN is not an SQS queue ARN
 */
export function parseQueueArn(queueArn: string): { region: string; account: string; name: string } {
  const match = /^arn:aws[a-z-]*:sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_.-]+)$/.exec(queueArn);
  if (!match) throw new Error(`not an SQS queue ARN: ${queueArn}`);
  return { region: match[1]!, account: match[2]!, name: match[3]! };
}
