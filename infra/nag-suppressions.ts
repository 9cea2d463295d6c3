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

export interface BucketPrefixGrants {
  readonly bucket: IConstruct;
  /** Prefixes the role may read or write objects under, each ending in `/`. */
  readonly prefixes: readonly string[];
}

/**
 * Accepts the IAM5 findings that object access by key prefix produces for `role`: one
 * `<bucket>/<prefix>*` resource per granted prefix, each named exactly (no blanket IAM5
 * suppression). The actions are exact (`s3:GetObject`, `s3:PutObject`), never wildcards.
 */
export function acceptBucketPrefixGrants(role: iam.IRole, grants: BucketPrefixGrants): void {
  if (grants.prefixes.length === 0) return;
  const bucketArn = nagArnOf(grants.bucket);
  NagSuppressions.addResourceSuppressions(
    role,
    [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Object access is limited to the key prefixes this function owns; keys below a prefix (sources, per-unit Parquet parts, run summaries, fitted statistics) are only known at run time.',
        appliesTo: grants.prefixes.map((prefix) => `Resource::${bucketArn}/${prefix}*`),
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
