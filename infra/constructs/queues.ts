import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface QueuesProps {
  /** Deliveries before a message moves to its dead-letter queue (`workers.maxReceiveCount`). */
  readonly maxReceiveCount: number;
  /** Visibility timeout of the ingest queue; at least 6x the plan function timeout. */
  readonly ingestVisibilityTimeout: Duration;
  /** Visibility timeout of the work queue; at least 6x the work function timeout. */
  readonly workVisibilityTimeout: Duration;
  /** Visibility timeout of the finalize queue; at least 6x the finalize function timeout. */
  readonly finalizeVisibilityTimeout: Duration;
  /**
   * Visibility timeout of the work dead-letter queue, which the dead-letter function
   * consumes; at least 6x that function's timeout.
   */
  readonly workDeadLetterVisibilityTimeout: Duration;
  /**
   * Visibility timeout of the compute queue (at least 6x `WorkCompute`'s timeout), whose
   * dead-letter queue the dead-letter function consumes too (issue 14).
   * @default - no compute queue: the stack does not split (`workPoolsOf`)
   */
  readonly workComputeVisibilityTimeout?: Duration;
}

/** A queue and the dead-letter queue that keeps what it could not deliver. */
export interface QueueWithDlq {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
}

/**
 * The three hand-offs of a run: S3 notifications to plan (ingest), unit descriptors
 * to the workers (work), and the last finished unit to finalize (finalize). The work
 * dead-letter queue is itself consumed, by the dead-letter function. Every queue
 * has a dead-letter queue, SQS-managed encryption (which S3 event notifications can
 * write to, unlike a customer KMS key without a key policy for S3) and a TLS-only policy.
 */
export class Queues extends Construct {
  readonly ingest: QueueWithDlq;
  readonly work: QueueWithDlq;
  readonly finalize: QueueWithDlq;
  /**
   * Where the work dead-letter queue's own undeliverable messages go: a dead letter the
   * dead-letter function keeps failing on (after `maxReceiveCount` deliveries) moves here,
   * kept 14 days and alarmed, instead of cycling in the work DLQ until it expires.
   */
  readonly workDeadLetterOverflow: sqs.Queue;
  /** The compute queue (`WorkCompute`'s), with the same dead-letter queues as work's; undefined when not split. */
  readonly workCompute: (QueueWithDlq & { readonly deadLetterOverflow: sqs.Queue }) | undefined;
  /** All dead-letter queues, for alarms. */
  readonly deadLetterQueues: readonly { readonly name: string; readonly queue: sqs.Queue }[];

  constructor(scope: Construct, id: string, props: QueuesProps) {
    super(scope, id);
    this.ingest = this.queueWithDlq('Ingest', props.ingestVisibilityTimeout, props.maxReceiveCount);
    const work = this.queueWithDlq(
      'Work',
      props.workVisibilityTimeout,
      props.maxReceiveCount,
      props.workDeadLetterVisibilityTimeout,
    );
    this.finalize = this.queueWithDlq('Finalize', props.finalizeVisibilityTimeout, props.maxReceiveCount);
    this.work = work;
    this.workDeadLetterOverflow = work.deadLetterOverflow!;
    const compute =
      props.workComputeVisibilityTimeout === undefined
        ? undefined
        : this.queueWithDlq(
            'WorkCompute',
            props.workComputeVisibilityTimeout,
            props.maxReceiveCount,
            props.workDeadLetterVisibilityTimeout,
          );
    this.workCompute = compute && { ...compute, deadLetterOverflow: compute.deadLetterOverflow! };
    this.deadLetterQueues = [
      { name: 'ingest', queue: this.ingest.deadLetterQueue },
      { name: 'work', queue: this.work.deadLetterQueue },
      { name: 'work-dead-letters', queue: this.workDeadLetterOverflow },
      { name: 'finalize', queue: this.finalize.deadLetterQueue },
      ...(compute === undefined
        ? []
        : [
            { name: 'work-compute', queue: compute.deadLetterQueue },
            { name: 'work-compute-dead-letters', queue: compute.deadLetterOverflow! },
          ]),
    ];
  }

  /**
   * @param deadLetterVisibilityTimeout only for a dead-letter queue a function consumes (SQS
   *   default: 30 s); such a queue gets a dead-letter queue of its own (`deadLetterOverflow`)
   */
  private queueWithDlq(
    id: string,
    visibilityTimeout: Duration,
    maxReceiveCount: number,
    deadLetterVisibilityTimeout?: Duration,
  ): QueueWithDlq & { readonly deadLetterOverflow?: sqs.Queue } {
    const deadLetterOverflow =
      deadLetterVisibilityTimeout === undefined
        ? undefined
        : new sqs.Queue(this, `${id}DeadLetterQueueDeadLetters`, {
            encryption: sqs.QueueEncryption.SQS_MANAGED,
            enforceSSL: true,
            retentionPeriod: Duration.days(14),
          });
    const deadLetterQueue = new sqs.Queue(this, `${id}DeadLetterQueue`, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: deadLetterVisibilityTimeout,
      // The longest SQS allows, so a failure found after a long weekend can still be redriven.
      retentionPeriod: Duration.days(14),
      ...(deadLetterOverflow === undefined
        ? {}
        : { deadLetterQueue: { queue: deadLetterOverflow, maxReceiveCount } }),
    });
    const queue = new sqs.Queue(this, `${id}Queue`, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout,
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount },
    });
    return { queue, deadLetterQueue, ...(deadLetterOverflow === undefined ? {} : { deadLetterOverflow }) };
  }
}
