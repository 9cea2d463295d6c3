import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { STAGING_PREFIX } from '../../shared/plan/restage-gzip.ts';

export interface StorageProps {
  /**
   * Server-side encryption of the data bucket. KMS needs a key grant for every reader
   * (Athena users included); S3-managed keys need none.
   * @default s3.BucketEncryption.S3_MANAGED
   */
  readonly encryption?: s3.BucketEncryption.S3_MANAGED | s3.BucketEncryption.KMS;
  /**
   * What happens to the buckets when the stack is deleted. Results and inputs are
   * user data, so they are kept unless a caller opts out (tests, throwaway stacks).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Days Athena query results are kept under `athena-results/`.
   * @default 30
   */
  readonly athenaResultsRetentionDays?: number;
  /**
   * Days re-staged parts of big gzip sources are kept under `staging/`. They are read
   * only while their run's units run and when a failed unit is redriven (the longest a
   * dead-letter queue keeps a message is 14 days; the work DLQ is consumed at once, so a
   * redrive from the runs table after this many days finds its part gone).
   * @default 14
   */
  readonly stagingRetentionDays?: number;
  /**
   * Days an overwritten or deleted object stays recoverable as a noncurrent version before
   * S3 removes it: the earlier part of a retried unit, and the parts of superseded runs
   * that `sluice gc --deployed` deletes (the bucket is versioned, so a delete is a delete
   * marker until then). Delete markers left with no version behind them are removed too.
   * @default 30
   */
  readonly supersededVersionRetentionDays?: number;
}

/**
 * The data bucket (inputs under `incoming/` and `datasets/`, Parquet under `results/`,
 * run summaries and partial aggregates under `runs/`, model archives, feature statistics
 * and lookup tables under `models/`, re-staged gzip parts under `staging/`, Athena output
 * under `athena-results/`) and the bucket
 * that receives its server access logs.
 */
export class Storage extends Construct {
  readonly bucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: StorageProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    // Grant log delivery through a bucket policy rather than the legacy
    // LogDeliveryWrite ACL, so both buckets keep ACLs disabled (BucketOwnerEnforced)
    // whatever the app's cdk.json says. Context must be set before any child exists.
    this.node.setContext(cxapi.S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY, true);

    // S3 server access logging only delivers to SSE-S3 buckets, never SSE-KMS.
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy,
    });
    NagSuppressions.addResourceSuppressions(this.accessLogsBucket, [
      {
        id: 'AwsSolutions-S1',
        reason:
          'This is the access-log destination of the data bucket; logging it into itself would log its own log deliveries.',
      },
    ]);

    this.bucket = new s3.Bucket(this, 'DataBucket', {
      encryption: props.encryption ?? s3.BucketEncryption.S3_MANAGED,
      bucketKeyEnabled: props.encryption === s3.BucketEncryption.KMS ? true : undefined,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'data-bucket/',
      lifecycleRules: [
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
        // A retried unit overwrites its own Parquet part and gc deletes superseded runs' parts:
        // old versions are a safety net (an undo window), then go.
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(props.supersededVersionRetentionDays ?? 30),
          expiredObjectDeleteMarker: true,
        },
        {
          id: 'expire-athena-results',
          prefix: 'athena-results/',
          expiration: Duration.days(props.athenaResultsRetentionDays ?? 30),
        },
        {
          id: 'expire-staging',
          prefix: STAGING_PREFIX,
          expiration: Duration.days(props.stagingRetentionDays ?? 14),
        },
      ],
      removalPolicy,
    });
  }
}

/**
 * An S3 event notification destination that is an SQS queue, like aws-cdk-lib's
 * `SqsDestination`, whose queue policy lets S3 send only for this bucket (`aws:SourceArn`)
 * and only when the bucket is in this stack's account (`aws:SourceAccount`): bucket names
 * are global, so a bucket of the same name in another account after this one is deleted
 * cannot send to the queue (AWS's confused-deputy guidance for S3 notifications). The
 * queue uses SQS-managed encryption, so no key policy is needed (a KMS-encrypted queue is
 * refused rather than left unreadable to S3).
 */
export class SourceAccountQueueDestination implements s3.IBucketNotificationDestination {
  constructor(private readonly queue: sqs.IQueue) {}

  bind(scope: Construct, bucket: s3.IBucketRef): s3.BucketNotificationDestinationConfig {
    if (this.queue.encryptionMasterKey) {
      throw new Error(
        `${this.queue.node.path}: S3 notifications need the queue's KMS key policy to allow S3; use SQS-managed encryption`,
      );
    }
    this.queue.grantSendMessages(
      new iam.ServicePrincipal('s3.amazonaws.com', {
        conditions: {
          ArnLike: { 'aws:SourceArn': bucket.bucketRef.bucketArn },
          StringEquals: { 'aws:SourceAccount': Stack.of(scope).account },
        },
      }),
    );
    return {
      arn: this.queue.queueArn,
      type: s3.BucketNotificationDestinationType.QUEUE,
      dependencies: [this.queue],
    };
  }
}
