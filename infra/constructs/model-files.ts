import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack, Stage } from 'aws-cdk-lib';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { FeatureSpec } from '../../shared/scoring/features/feature-spec.ts';
import { embeddingTableKeys } from '../../shared/scoring/features/feature-transformer.ts';
import { modelDataKeyOf } from '../deployment-settings.ts';
import { nagArnOf } from '../nag-suppressions.ts';

/** `pipelines/` of this repository: the configs and, under their keys, the model files they name. */
export const PIPELINES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipelines');

/** One file the stack uploads: object `key`, from `<sourceDir>/<key>`. */
export interface ModelFile {
  readonly key: string;
  /** Which pipeline names it, and as what, for messages. */
  readonly namedBy: string;
}

/**
 * The files the deployed pipelines read besides their inputs that ship beside the configs
 * (`<sourceDir>/<key>`, the files `sluice run` seeds its local bucket with): each score
 * pipeline's model, which must be there (a one-line error names the fix when it is not):
 * with `model.hosting` in-worker the JSON model (`model.modelKey`) the work function
 * evaluates, otherwise the model archive SageMaker loads when it creates the model; its
 * embedding tables and,
 * unless `featureStats.refit`, its committed feature statistics (the ones the model was
 * trained with); each embed pipeline's tokenizer files. Optional files that are not there
 * are left to the user to upload.
 */
export function modelFilesOf(pipelines: readonly PipelineConfig[], sourceDir: string): ModelFile[] {
  const files = new Map<string, ModelFile>();
  const exists = (key: string) =>
    existsSync(path.join(sourceDir, key)) && statSync(path.join(sourceDir, key)).isFile();
  const add = (key: string, namedBy: string, required: boolean, fix?: string) => {
    if (files.has(key)) return;
    if (exists(key)) files.set(key, { key, namedBy });
    else if (required) {
      throw new Error(
        `${namedBy} "${key}" is not in ${path.relative(process.cwd(), sourceDir) || '.'}/: ${
          fix ??
          (key.endsWith('.tar.gz')
            ? 'the stack uploads the model archive so that one deploy creates the scoring endpoint; build it as docs/infra.md (Scoring model archive) says and commit it there'
            : 'the stack uploads the XGBoost JSON model the work function evaluates (model.hosting in-worker); commit it there')
        }`,
      );
    }
  };
  for (const pipeline of pipelines) {
    if (pipeline.kind === 'embed') {
      const tokenizer = pipeline.chunking.tokenizer;
      if (tokenizer) add(tokenizer.key, `pipeline ${pipeline.name}: chunking.tokenizer.key`, false);
      if (tokenizer?.configKey)
        add(tokenizer.configKey, `pipeline ${pipeline.name}: chunking.tokenizer.configKey`, false);
      continue;
    }
    if (pipeline.kind !== 'score') continue;
    // In the worker the JSON model is what runs; on an endpoint, the archive SageMaker loads.
    if (pipeline.model.hosting === 'in-worker')
      add(pipeline.model.modelKey, `pipeline ${pipeline.name}: model.modelKey`, true);
    else add(modelDataKeyOf(pipeline.model), `pipeline ${pipeline.name}: model archive`, true);
    // An inferred spec is built from the JSON model's feature names: plan and the workers read it beside the archive.
    if (pipeline.model.hosting !== 'in-worker' && (pipeline.featureSpec as FeatureSpec).infer === true)
      add(
        pipeline.model.modelKey,
        `pipeline ${pipeline.name}: model.modelKey`,
        true,
        'featureSpec "infer" builds the spec from the feature names in the XGBoost JSON model, so the stack uploads it beside the archive; commit it there (or write featureSpec.features)',
      );
    for (const key of embeddingTableKeys(pipeline.featureSpec as FeatureSpec)) {
      add(key, `pipeline ${pipeline.name}: embedding table`, false);
    }
    if (!pipeline.featureStats.refit)
      add(pipeline.featureStats.key, `pipeline ${pipeline.name}: featureStats.key`, false);
  }
  return [...files.values()];
}

export interface ModelFilesProps {
  /** The data bucket the functions and endpoints read the files from. */
  readonly bucket: s3.IBucket;
  readonly files: readonly ModelFile[];
  /**
   * Folder the files are read from: `<sourceDir>/<key>` becomes object `<key>`.
   * @default PIPELINES_DIR
   */
  readonly sourceDir?: string;
}

/**
 * Uploads the committed model files into the data bucket during the deployment (CDK's
 * BucketDeployment: a file asset copied by a custom resource), so a stack with score
 * pipelines deploys in one command: the SageMaker models depend on this construct and are
 * created after their archive is in the bucket. Files already in the bucket under other
 * keys are kept (no prune), and so are these when the stack is deleted.
 */
export class ModelFiles extends Construct {
  readonly deployment: s3deploy.BucketDeployment;
  /** The keys uploaded. */
  readonly keys: readonly string[];

  constructor(scope: Construct, id: string, props: ModelFilesProps) {
    super(scope, id);
    const sourceDir = props.sourceDir ?? PIPELINES_DIR;
    this.keys = props.files.map((f) => f.key);
    this.deployment = new s3deploy.BucketDeployment(this, 'Upload', {
      sources: [s3deploy.Source.asset(stageFiles(this, sourceDir, this.keys))],
      destinationBucket: props.bucket,
      prune: false,
      retainOnDelete: true,
      extract: true,
    });
    suppressBucketDeploymentFindings(this, props.bucket);
  }
}

/**
 * Copies exactly `keys` from `sourceDir` into a folder of the cloud assembly named by
 * their content, so the asset holds those files and nothing else beside them.
 */
function stageFiles(scope: Construct, sourceDir: string, keys: readonly string[]): string {
  const hash = createHash('sha256');
  for (const key of [...keys].sort()) {
    hash
      .update(key)
      .update('\0')
      .update(readFileSync(path.join(sourceDir, key)))
      .update('\0');
  }
  const dir = path.join(Stage.of(scope)?.outdir ?? tmpdir(), 'sluice-model-files', hash.digest('hex'));
  for (const key of keys) {
    const target = path.join(dir, ...key.split('/'));
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(path.join(sourceDir, key), target);
  }
  return dir;
}

/**
 * cdk-nag findings on what aws-cdk-lib creates for a BucketDeployment, which it offers no
 * props to change: the singleton handler function (one per stack) and its role.
 */
function suppressBucketDeploymentFindings(scope: Construct, bucket: s3.IBucket): void {
  const stack = Stack.of(scope);
  const handler = stack.node.tryFindChild('Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C');
  if (!handler) return;
  NagSuppressions.addResourceSuppressions(
    handler,
    [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          "aws-cdk-lib's BucketDeployment handler role uses AWSLambdaBasicExecutionRole (its own log writes) and offers no way to replace it; it runs only during deployments",
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "aws-cdk-lib's BucketDeployment grants its handler read of the CDK asset bucket and read-write of the destination bucket's objects with the helpers' wildcard action groups, and offers no prop to narrow them; only CloudFormation invokes it, during deployments",
        appliesTo: [
          'Action::s3:GetObject*',
          'Action::s3:GetBucket*',
          'Action::s3:List*',
          'Action::s3:DeleteObject*',
          'Action::s3:Abort*',
          `Resource::${nagArnOf(bucket)}/*`,
          // The bootstrap asset bucket, cdk-<qualifier>-assets-<account>-<region>.
          // Partition as a token or, with @aws-cdk/core:enablePartitionLiterals, a literal.
          { regex: '/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):s3:::cdk-[a-z0-9]+-assets-[^/]+\\/\\*$/' },
        ],
      },
      {
        id: 'AwsSolutions-L1',
        reason:
          "aws-cdk-lib pins the BucketDeployment handler's Python runtime (it bundles the AWS CLI layer built for it); it runs only during deployments",
      },
    ],
    true,
  );
}
