import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Stack, Stage } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelFilesOf, PIPELINES_DIR } from '../../infra/constructs/model-files.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import type { EmbedPipelineConfig, ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { buildStack, loadCreditRiskPipeline, loadDocsPipeline } from './sluice-stack-fixture.ts';

let docs: EmbedPipelineConfig;
let creditRisk: ScorePipelineConfig;
let stack: SluiceStack;
let template: Template;
let embedOnly: SluiceStack;
const scratch = mkdtempSync(path.join(tmpdir(), 'sluice-model-files-'));

beforeAll(async () => {
  docs = await loadDocsPipeline();
  creditRisk = await loadCreditRiskPipeline();
  stack = buildStack({ pipelines: [docs, creditRisk] }).stack;
  template = Template.fromStack(stack);
  embedOnly = buildStack({ pipelines: [docs] }).stack;
}, 180_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const logicalIdOf = (construct: { node: { defaultChild?: unknown } }) =>
  Stack.of(stack).getLogicalId(construct.node.defaultChild as never);

/** Every file under `dir`, as keys relative to it. */
const keysUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
    .sort();

describe('the committed model archive', () => {
  it('holds exactly one file, xgboost-model, byte-identical to the JSON model the local server evaluates', () => {
    const archive = path.join(PIPELINES_DIR, 'models/credit-risk/model.tar.gz');
    expect(execFileSync('tar', ['-tzf', archive], { encoding: 'utf8' })).toBe('xgboost-model\n');
    const inside = execFileSync('tar', ['-xzOf', archive, 'xgboost-model']);
    // Rebuild it with scripts/build-model-archive.sh when model.json changes.
    expect(inside.equals(readFileSync(path.join(PIPELINES_DIR, creditRisk.model.modelKey)))).toBe(true);
  });
});

describe('modelFilesOf', () => {
  it("lists each score pipeline's archive, embedding tables and committed statistics, and nothing for docs", () => {
    expect(modelFilesOf([docs, creditRisk], PIPELINES_DIR).map((f) => f.key)).toEqual([
      'models/credit-risk/model.tar.gz',
      'models/credit-risk/occupation-embedding.json',
      'models/credit-risk/feature-stats.json',
    ]);
    expect(modelFilesOf([docs], PIPELINES_DIR)).toEqual([]);
  });

  it('leaves the statistics to the runs when the pipeline refits them', () => {
    const refit = { ...creditRisk, featureStats: { ...creditRisk.featureStats, refit: true } };
    expect(modelFilesOf([refit], PIPELINES_DIR).map((f) => f.key)).not.toContain(creditRisk.featureStats.key);
  });

  it('refuses, in one line, a score pipeline whose model archive is not committed', () => {
    const dir = path.join(scratch, 'no-archive');
    cpSync(PIPELINES_DIR, dir, { recursive: true });
    rmSync(path.join(dir, 'models/credit-risk/model.tar.gz'));
    expect(() => modelFilesOf([creditRisk], dir)).toThrow(
      /^pipeline credit-risk: model archive "models\/credit-risk\/model.tar.gz" is not in .*no-archive\/: the stack uploads the model archive so that one deploy creates the scoring endpoint; build it as docs\/infra.md \(Scoring model archive\) says and commit it there$/,
    );
    expect(() => buildStack({ pipelines: [docs, creditRisk], modelFilesDir: dir })).toThrow(
      /^pipeline credit-risk: model archive/,
    );
  });
});

describe('ModelFiles in the stack', () => {
  it('uploads the model files into the data bucket during the deployment, keeping what else is there', () => {
    template.resourceCountIs('Custom::CDKBucketDeployment', 1);
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketName: { Ref: logicalIdOf(stack.storage.bucket) },
      Prune: false,
      RetainOnDelete: true,
    });
  });

  it('uploads those files and nothing else, under their keys', () => {
    const asset = stack.modelFiles!.deployment.node.findChild('Asset1') as s3assets.Asset;
    const dir = path.resolve(Stage.of(stack)!.outdir, asset.assetPath);
    expect(keysUnder(dir)).toEqual([
      'models/credit-risk/feature-stats.json',
      'models/credit-risk/model.tar.gz',
      'models/credit-risk/occupation-embedding.json',
    ]);
  });

  it('creates the scoring model only after its archive is in the bucket, so one deploy suffices', () => {
    const upload = stack.modelFiles!.deployment.node.findChild('CustomResource');
    const uploadId = Stack.of(stack).getLogicalId(upload.node.defaultChild as never);
    const model = template.toJSON().Resources[stack.getLogicalId(stack.scoringEndpoints[0]!.model)];
    expect(model.DependsOn).toContain(uploadId);
  });

  it('uploads nothing for a stack of embed pipelines without tokenizer files', () => {
    expect(embedOnly.modelFiles).toBeUndefined();
    Template.fromStack(embedOnly).resourceCountIs('Custom::CDKBucketDeployment', 0);
  });
});

describe('modelFilesOf with model.hosting in-worker', () => {
  it('lists the JSON model the work function evaluates instead of the archive', () => {
    const inWorker = { ...creditRisk, model: { ...creditRisk.model, hosting: 'in-worker' as const } };
    expect(modelFilesOf([inWorker], PIPELINES_DIR).map((f) => f.key)).toEqual([
      'models/credit-risk/model.json',
      'models/credit-risk/occupation-embedding.json',
      'models/credit-risk/feature-stats.json',
    ]);
  });

  it('refuses, in one line, an in-worker pipeline whose JSON model is not committed', () => {
    const dir = path.join(scratch, 'no-json-model');
    cpSync(PIPELINES_DIR, dir, { recursive: true });
    rmSync(path.join(dir, 'models/credit-risk/model.json'));
    const inWorker = { ...creditRisk, model: { ...creditRisk.model, hosting: 'in-worker' as const } };
    expect(() => modelFilesOf([inWorker], dir)).toThrow(
      /^pipeline credit-risk: model.modelKey "models\/credit-risk\/model.json" is not in .*no-json-model\/: the stack uploads the XGBoost JSON model the work function evaluates \(model.hosting in-worker\); commit it there$/,
    );
  });
});
