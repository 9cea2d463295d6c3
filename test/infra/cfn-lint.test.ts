import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Aspects, RemovalPolicy } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOYABLE_REGIONS, REGIONS_WITHOUT_INFERENCE_COMPONENTS } from '../../infra/images/registries.ts';
import { addSluiceStack } from '../../infra/sluice-app.ts';
import { SluiceStack } from '../../infra/sluice-stack.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { FIXTURE_ENTRIES, loadCreditRiskPipeline, loadDocsPipeline } from './sluice-stack-fixture.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIG_FILE = path.join(repoRoot, '.cfnlintrc.yaml');
const cdkContext = JSON.parse(readFileSync(path.join(repoRoot, 'cdk.json'), 'utf8')).context as Record<
  string,
  unknown
>;
const scratch = mkdtempSync(path.join(tmpdir(), 'sluice-cfn-lint-'));

/** cfn-lint's version, or a one-line error saying how to install it. */
function cfnLintVersion(): string {
  const run = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    throw new Error(
      `cfn-lint is not installed or does not run (${run.error?.message ?? run.stderr.trim().split('\n')[0]}): install it with pip install cfn-lint (README, Deploying)`,
    );
  }
  return run.stdout.trim();
}

let assembly: CloudAssembly;

/**
 * One app, one synth: the stack `cdk synth` builds (infra/app.ts: cdk.json's context, no
 * account, us-east-1 where the CLI defaults to it: inference components for docs and for
 * credit-risk's `hosting: instance`), and beside it a stack as the infra tests build theirs
 * (a concrete account, destroyable data) under another name, region, TEI version and model,
 * with the other hostings: docs always-on, credit-risk serverless, and an in-worker copy of
 * it (endpoint and compute pipelines: a split stack, with WorkCompute and the compute queue,
 * issue 14). Both use the fixture handlers: the template does not depend on what the handlers
 * contain. cdk-nag runs on both, as infra/app.ts applies it.
 */
beforeAll(async () => {
  const app = new App({ context: cdkContext, outdir: scratch });
  await addSluiceStack(app, { env: { region: 'us-east-1' }, functionEntries: FIXTURE_ENTRIES });
  const docs = await loadDocsPipeline();
  const creditRisk = await loadCreditRiskPipeline();
  new SluiceStack(app, 'SluiceDev', {
    env: { account: '123456789012', region: 'eu-west-1' },
    pipelines: [
      parsePipelineConfig({
        ...docs,
        endpoint: { ...docs.endpoint, capacity: { mode: 'always-on', minCopies: 1, maxCopies: 2 } },
      }),
      parsePipelineConfig({
        ...creditRisk,
        model: {
          ...creditRisk.model,
          hosting: 'serverless',
          serverless: { memoryMiB: 4096, maxConcurrency: 50 },
        },
      }),
      parsePipelineConfig({
        ...creditRisk,
        name: 'credit-risk-in-worker',
        schedule: undefined,
        model: { ...creditRisk.model, endpointName: 'unused-in-worker', hosting: 'in-worker' },
      }),
    ],
    teiVersion: '1.9',
    hfModelId: 'BAAI/bge-base-en-v1.5',
    functionEntries: FIXTURE_ENTRIES,
    dataRemovalPolicy: RemovalPolicy.DESTROY,
  });
  // Scoring alone, in-worker and serverless: no inference component, so it deploys (and is
  // linted) in every region, eu-west-3 among those without inference components.
  new SluiceStack(app, 'SluiceScoring', {
    env: { account: '123456789012', region: 'eu-west-3' },
    pipelines: [
      parsePipelineConfig({ ...creditRisk, model: { ...creditRisk.model, hosting: 'serverless' } }),
      parsePipelineConfig({
        ...creditRisk,
        name: 'credit-risk-in-worker',
        schedule: undefined,
        model: { ...creditRisk.model, endpointName: 'unused-in-worker', hosting: 'in-worker' },
      }),
    ],
    functionEntries: FIXTURE_ENTRIES,
    dataRemovalPolicy: RemovalPolicy.DESTROY,
  });
  Aspects.of(app).add(new AwsSolutionsChecks());
  assembly = app.synth();
}, 300_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the synthesized templates', () => {
  it('pass cfn-lint with zero findings in every region Sluice deploys to (.cfnlintrc.yaml says what is ignored and why)', () => {
    cfnLintVersion();
    const byName = new Map(assembly.stacks.map((stack) => [stack.stackName, stack.templateFullPath]));
    expect([...byName.keys()].sort()).toEqual(['Sluice', 'SluiceDev', 'SluiceScoring']);
    // cfn-lint checks each resource type exists in each region: templates with inference
    // components in the regions that have them, the one without in every region.
    const lint = (templates: string[], regions: readonly string[]) =>
      spawnSync(
        'cfn-lint',
        ['--config-file', CONFIG_FILE, '--format', 'parseable', '--regions', ...regions, '--', ...templates],
        { encoding: 'utf8' },
      );
    const withComponents = DEPLOYABLE_REGIONS.filter(
      (r) => !REGIONS_WITHOUT_INFERENCE_COMPONENTS.includes(r),
    );
    expect(withComponents.length).toBeGreaterThanOrEqual(15);
    for (const run of [
      lint([byName.get('Sluice')!, byName.get('SluiceDev')!], withComponents),
      lint([byName.get('SluiceScoring')!], DEPLOYABLE_REGIONS),
    ]) {
      expect(run.error).toBeUndefined();
      expect(`${run.stdout}${run.stderr}`.trim()).toBe('');
      expect(run.status).toBe(0);
    }
  }, 300_000);

  it('carry no unsuppressed cdk-nag error or warning as cdk synth builds them (no account, partition literals)', () => {
    const findings = assembly.stacks
      .flatMap((stack) => stack.messages)
      .filter((message) => message.level !== 'info' && String(message.entry.data).startsWith('AwsSolutions-'))
      .map((message) => `${message.id}: ${String(message.entry.data).split(':')[0]}`);
    expect(findings).toEqual([]);
  });
});
