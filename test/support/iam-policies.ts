import type { RecordedCall } from './sdk-call-recorder.ts';

/** The fake account and region the stack fixture is synthesized for (`buildStack`). */
export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

// biome-ignore lint/suspicious/noExplicitAny: a CloudFormation template is JSON with no static type here.
type Json = any;

interface CfnResource {
  readonly Type: string;
  readonly Properties?: Json;
}

/**
 * Concrete names for a synthesized template's resources, as if deployed to {@link ACCOUNT}
 * in {@link REGION}: every `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Select`, `Fn::Split` and
 * pseudo parameter in a policy resolves to the ARN or name a deployment would have. Queues
 * and the table are named by their logical ids, buckets by their lower-cased logical ids,
 * so local servers can create resources with the same names.
 */
export class DeployedNames {
  private readonly resources: Record<string, CfnResource>;

  constructor(template: { Resources: Record<string, CfnResource> }) {
    this.resources = template.Resources;
  }

  /** The name of a bucket, queue or table resource. */
  nameOf(logicalId: string): string {
    const resource = this.resource(logicalId);
    switch (resource.Type) {
      case 'AWS::S3::Bucket':
        return logicalId.toLowerCase();
      case 'AWS::SageMaker::Endpoint':
        return String(resource.Properties?.EndpointName ?? logicalId);
      case 'AWS::Logs::LogGroup':
        return typeof resource.Properties?.LogGroupName === 'string'
          ? resource.Properties.LogGroupName
          : logicalId;
      default:
        return logicalId;
    }
  }

  queueUrl(logicalId: string): string {
    return `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${this.nameOf(logicalId)}`;
  }

  arnOf(logicalId: string): string {
    const resource = this.resource(logicalId);
    const name = this.nameOf(logicalId);
    switch (resource.Type) {
      case 'AWS::S3::Bucket':
        return `arn:aws:s3:::${name}`;
      case 'AWS::SQS::Queue':
        return `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`;
      case 'AWS::DynamoDB::Table':
        return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}`;
      case 'AWS::Lambda::Function':
        return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${ACCOUNT}:role/${name}`;
      case 'AWS::Logs::LogGroup':
        return `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${name}:*`;
      case 'AWS::SageMaker::Endpoint':
        return `arn:aws:sagemaker:${REGION}:${ACCOUNT}:endpoint/${name.toLowerCase()}`;
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${REGION}:${ACCOUNT}:${name}`;
      case 'AWS::KMS::Key':
        return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${name}`;
      default:
        throw new Error(`no ARN for ${resource.Type} ${logicalId}: extend DeployedNames.arnOf`);
    }
  }

  /** Resolves the intrinsic functions CDK writes in policies to plain strings. */
  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [key] = keys as [string];
      const arg = value[key];
      switch (key) {
        case 'Ref':
          return this.ref(arg);
        case 'Fn::GetAtt':
          return this.getAtt(arg[0], arg[1]);
        case 'Fn::Join':
          return (this.resolve(arg[1]) as string[]).join(arg[0]);
        case 'Fn::Select':
          return (this.resolve(arg[1]) as string[])[Number(this.resolve(arg[0]))];
        case 'Fn::Split':
          return String(this.resolve(arg[1])).split(arg[0]);
      }
      if (key.startsWith('Fn::'))
        throw new Error(`unsupported intrinsic ${key}: extend DeployedNames.resolve`);
    }
    return Object.fromEntries(keys.map((k) => [k, this.resolve(value[k])]));
  }

  private ref(name: string): string {
    switch (name) {
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::Region':
        return REGION;
      case 'AWS::AccountId':
        return ACCOUNT;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
    }
    const resource = this.resource(name);
    switch (resource.Type) {
      case 'AWS::SQS::Queue':
        return this.queueUrl(name);
      case 'AWS::SageMaker::Endpoint':
      case 'AWS::SNS::Topic':
        return this.arnOf(name);
      default:
        return this.nameOf(name);
    }
  }

  private getAtt(logicalId: string, attribute: string): string {
    switch (attribute) {
      case 'Arn':
        return this.arnOf(logicalId);
      case 'QueueName':
      case 'EndpointName':
        return this.nameOf(logicalId);
      case 'QueueUrl':
        return this.queueUrl(logicalId);
      case 'StreamArn':
        return `${this.arnOf(logicalId)}/stream/2026-01-01T00:00:00.000`;
      default:
        throw new Error(`unsupported Fn::GetAtt ${logicalId}.${attribute}: extend DeployedNames.getAtt`);
    }
  }

  private resource(logicalId: string): CfnResource {
    const resource = this.resources[logicalId];
    if (!resource) throw new Error(`no resource ${logicalId} in the template`);
    return resource;
  }
}

/** One IAM request a recorded SDK call makes. */
export interface IamRequest {
  readonly action: string;
  readonly resource: string;
  /** Condition keys the request carries (`s3:prefix` of a listing, ...). */
  readonly context: Record<string, string>;
}

const queueArnOfUrl = (url: unknown): string => {
  const name = String(url).split('/').at(-1);
  return `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`;
};
const tableArn = (table: string, index?: unknown) =>
  `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${table}${index === undefined ? '' : `/index/${String(index)}`}`;
const objectArn = (input: Record<string, unknown>) =>
  `arn:aws:s3:::${String(input.Bucket)}/${String(input.Key)}`;

/**
 * The IAM actions and resources of one SDK command, as the service authorizes it (the
 * Service Authorization Reference's "actions" per API): HeadObject is `s3:GetObject` (or
 * `s3:GetObjectVersion` with a VersionId), ListObjectsV2 is `s3:ListBucket` on the bucket,
 * SendMessageBatch is `sqs:SendMessage`, a transaction is each item's own action, and so on.
 * Document-client commands (`GetCommand`) map like their low-level commands.
 *
 * @throws Error for a command this table does not know: extend it, never skip a call
 */
export function iamRequestsOf(call: RecordedCall): IamRequest[] {
  const input = call.input;
  const none = {};
  const versioned = (base: string) => (input.VersionId === undefined ? base : `${base}Version`);
  switch (call.command.replace(/Command$/, '')) {
    case 'GetObject':
    case 'HeadObject':
      return [{ action: versioned('s3:GetObject'), resource: objectArn(input), context: none }];
    case 'PutObject':
    case 'CreateMultipartUpload':
    case 'UploadPart':
    case 'CompleteMultipartUpload':
      return [{ action: 's3:PutObject', resource: objectArn(input), context: none }];
    case 'AbortMultipartUpload':
      return [{ action: 's3:AbortMultipartUpload', resource: objectArn(input), context: none }];
    case 'DeleteObject':
      return [{ action: versioned('s3:DeleteObject'), resource: objectArn(input), context: none }];
    case 'ListObjectsV2':
    case 'ListObjects':
      return [
        {
          action: 's3:ListBucket',
          resource: `arn:aws:s3:::${String(input.Bucket)}`,
          context: input.Prefix === undefined ? {} : { 's3:prefix': String(input.Prefix) },
        },
      ];
    case 'GetItem':
    case 'Get':
      return [{ action: 'dynamodb:GetItem', resource: tableArn(String(input.TableName)), context: none }];
    case 'PutItem':
    case 'Put':
      return [{ action: 'dynamodb:PutItem', resource: tableArn(String(input.TableName)), context: none }];
    case 'UpdateItem':
    case 'Update':
      return [{ action: 'dynamodb:UpdateItem', resource: tableArn(String(input.TableName)), context: none }];
    case 'DeleteItem':
    case 'Delete':
      return [{ action: 'dynamodb:DeleteItem', resource: tableArn(String(input.TableName)), context: none }];
    case 'Query':
      return [
        {
          action: 'dynamodb:Query',
          resource: tableArn(String(input.TableName), input.IndexName),
          context: none,
        },
      ];
    case 'Scan':
      return [
        {
          action: 'dynamodb:Scan',
          resource: tableArn(String(input.TableName), input.IndexName),
          context: none,
        },
      ];
    case 'BatchGetItem':
    case 'BatchGet':
      return Object.keys(input.RequestItems as object).map((table) => ({
        action: 'dynamodb:BatchGetItem',
        resource: tableArn(table),
        context: none,
      }));
    case 'BatchWriteItem':
    case 'BatchWrite':
      return Object.keys(input.RequestItems as object).map((table) => ({
        action: 'dynamodb:BatchWriteItem',
        resource: tableArn(table),
        context: none,
      }));
    case 'TransactWriteItems':
    case 'TransactWrite':
      return (input.TransactItems as Record<string, { TableName: string }>[]).map((item) => {
        const [kind, body] = Object.entries(item)[0]!;
        const action = {
          Put: 'PutItem',
          Update: 'UpdateItem',
          Delete: 'DeleteItem',
          ConditionCheck: 'ConditionCheckItem',
        }[kind];
        if (action === undefined) throw new Error(`unknown transaction item ${kind}`);
        return { action: `dynamodb:${action}`, resource: tableArn(body.TableName), context: none };
      });
    case 'TransactGetItems':
    case 'TransactGet':
      return (input.TransactItems as { Get: { TableName: string } }[]).map((item) => ({
        action: 'dynamodb:GetItem',
        resource: tableArn(item.Get.TableName),
        context: none,
      }));
    case 'SendMessage':
    case 'SendMessageBatch':
      return [{ action: 'sqs:SendMessage', resource: queueArnOfUrl(input.QueueUrl), context: none }];
    case 'ChangeMessageVisibility':
    case 'ChangeMessageVisibilityBatch':
      return [
        { action: 'sqs:ChangeMessageVisibility', resource: queueArnOfUrl(input.QueueUrl), context: none },
      ];
    case 'ReceiveMessage':
      return [{ action: 'sqs:ReceiveMessage', resource: queueArnOfUrl(input.QueueUrl), context: none }];
    case 'DeleteMessage':
    case 'DeleteMessageBatch':
      return [{ action: 'sqs:DeleteMessage', resource: queueArnOfUrl(input.QueueUrl), context: none }];
    case 'GetQueueAttributes':
      return [{ action: 'sqs:GetQueueAttributes', resource: queueArnOfUrl(input.QueueUrl), context: none }];
    case 'GetQueueUrl':
      return [
        {
          action: 'sqs:GetQueueUrl',
          resource: `arn:aws:sqs:${REGION}:${ACCOUNT}:${String(input.QueueName)}`,
          context: none,
        },
      ];
    case 'InvokeEndpoint':
      // A call that names an inference component is authorized against the endpoint
      // (required) and the component (Service Authorization Reference, InvokeEndpoint).
      return [
        {
          action: 'sagemaker:InvokeEndpoint',
          resource: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:endpoint/${String(input.EndpointName).toLowerCase()}`,
          context: none,
        },
        ...(input.InferenceComponentName === undefined
          ? []
          : [
              {
                action: 'sagemaker:InvokeEndpoint',
                resource: inferenceComponentArn(input.InferenceComponentName),
                context: none,
              },
            ]),
      ];
    case 'DescribeInferenceComponent':
    case 'UpdateInferenceComponentRuntimeConfig':
      return [
        {
          action: `sagemaker:${call.command.replace(/Command$/, '')}`,
          resource: inferenceComponentArn(input.InferenceComponentName),
          context: none,
        },
      ];
    case 'GetEventSourceMapping':
    case 'UpdateEventSourceMapping':
      // Authorized against the one mapping (Service Authorization Reference, AWS Lambda).
      return [
        {
          action: `lambda:${call.command.replace(/Command$/, '')}`,
          resource: `arn:aws:lambda:${REGION}:${ACCOUNT}:event-source-mapping:${String(input.UUID)}`,
          context: none,
        },
      ];
    default:
      throw new Error(
        `the IAM check has no mapping for ${call.client} ${call.command} (sent by ${call.fn}): add it to iamRequestsOf`,
      );
  }
}

/** `arn:aws:sagemaker:<region>:<account>:inference-component/<name>`; SageMaker lower-cases names in ARNs. */
function inferenceComponentArn(name: unknown): string {
  return `arn:aws:sagemaker:${REGION}:${ACCOUNT}:inference-component/${String(name).toLowerCase()}`;
}

/** Whether an IAM pattern (`*` and `?` wildcards) matches a value; actions ignore case. */
export function iamPatternMatches(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}
