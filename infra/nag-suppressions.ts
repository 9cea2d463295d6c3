import { type CfnElement, Stack } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * How cdk-nag names a `Fn::GetAtt [<resource>, Arn]` in an IAM5 finding, e.g.
 * `<StorageDataBucketB1B922FA.Arn>`, so a suppression names exactly one resource.
 */
export function nagArnOf(resource: IConstruct): string {
  const cfn = resource.node.defaultChild as CfnElement | undefined;
  if (!cfn) throw new Error(`${resource.node.path} has no CloudFormation resource to name`);
  return `<${Stack.of(resource).getLogicalId(cfn)}.Arn>`;
}

/** Action groups that `bucket.grantRead` writes with wildcards. */
const S3_READ_ACTIONS = ['Action::s3:GetObject*', 'Action::s3:GetBucket*', 'Action::s3:List*'];
/** Action groups that `bucket.grantReadWrite` adds with wildcards. */
const S3_WRITE_ACTIONS = ['Action::s3:DeleteObject*', 'Action::s3:Abort*'];
/** The action group that `bucket.grantPut` adds with a wildcard. */
const S3_PUT_ACTIONS = ['Action::s3:Abort*'];

export interface BucketPrefixGrants {
  readonly bucket: IConstruct;
  /** Prefixes granted with `grantRead`, each ending in `/`. */
  readonly read: readonly string[];
  /** Prefixes granted with `grantPut` (write, never delete), each ending in `/`. @default [] */
  readonly put?: readonly string[];
  /** Prefixes granted with `grantReadWrite`, each ending in `/`. */
  readonly readWrite: readonly string[];
}

/**
 * Accepts the IAM5 findings that `grantRead`/`grantPut`/`grantReadWrite` on object
 * prefixes produce for `role`: the helpers' action groups and one `<bucket>/<prefix>*`
 * resource per granted prefix, each named exactly (no blanket IAM5 suppression).
 */
export function acceptBucketPrefixGrants(role: iam.IRole, grants: BucketPrefixGrants): void {
  const bucketArn = nagArnOf(grants.bucket);
  const put = grants.put ?? [];
  const prefixes = [...new Set([...grants.read, ...put, ...grants.readWrite])];
  const writeActions = grants.readWrite.length ? S3_WRITE_ACTIONS : put.length ? S3_PUT_ACTIONS : [];
  NagSuppressions.addResourceSuppressions(
    role,
    [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Object access is limited to the key prefixes this function owns; keys below a prefix (sources, per-unit Parquet parts, run summaries, fitted statistics) are only known at run time. The s3:GetObject*/GetBucket*/List* groups come from the grantRead helper.',
        appliesTo: [...S3_READ_ACTIONS, ...prefixes.map((prefix) => `Resource::${bucketArn}/${prefix}*`)],
      },
      ...(writeActions.length
        ? [
            {
              id: 'AwsSolutions-IAM5',
              reason:
                'grantPut and grantReadWrite use s3:Abort* (and grantReadWrite s3:DeleteObject*) so a retried unit can replace its own part and abort its own multipart upload; limited to the prefixes this function writes.',
              appliesTo: writeActions,
            },
          ]
        : []),
    ],
    true,
  );
}

/** Accepts the `<table>/index/*` resource that `table.grantReadWriteData` adds for its indexes. */
export function acceptTableIndexGrant(role: iam.IRole, table: IConstruct): void {
  NagSuppressions.addResourceSuppressions(
    role,
    [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'grantReadWriteData includes the table indexes (<table>/index/*) so runs can be listed through the byStartedAt index without a scan; no other table is reachable.',
        appliesTo: [`Resource::${nagArnOf(table)}/index/*`],
      },
    ],
    true,
  );
}

/**
 * The S3 notifications custom resource handler is created by aws-cdk-lib with the
 * AWS managed basic execution policy; its own inline policy is limited to the bucket.
 */
export function acceptBucketNotificationsHandler(stack: Stack): void {
  for (const child of stack.node.children) {
    if (!child.node.id.startsWith('BucketNotificationsHandler')) continue;
    NagSuppressions.addResourceSuppressions(
      child,
      [
        {
          id: 'AwsSolutions-IAM4',
          reason:
            'aws-cdk-lib creates the S3 bucket-notifications custom resource handler with AWSLambdaBasicExecutionRole (CloudWatch Logs only) and offers no way to replace it; its PutBucketNotification permission is scoped to the data bucket.',
          appliesTo: [
            'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole',
          ],
        },
      ],
      true,
    );
  }
}
