import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Aspects, RemovalPolicy } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOYABLE_REGIONS } from '../../infra/images/registries.ts';
import { addSluiceStack } from '../../infra/sluice-app.ts';
import { SluiceStack } from '../../infra/sluice-stack.ts';
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
 * account, us-east-1 where the CLI defaults to it), and beside it a stack as the infra
 * tests build theirs (a concrete account, destroyable data) under another name, region,
 * TEI version and model. Both use the fixture handlers: the template does not depend on
 * what the handlers contain. cdk-nag runs on both, as infra/app.ts applies it.
 */
beforeAll(async () => {
  const app = new App({ context: cdkContext, outdir: scratch });
  await addSluiceStack(app, { env: { region: 'us-east-1' }, functionEntries: FIXTURE_ENTRIES });
  new SluiceStack(app, 'SluiceDev', {
    env: { account: '123456789012', region: 'eu-west-1' },
    pipelines: [await loadDocsPipeline(), await loadCreditRiskPipeline()],
    teiVersion: '1.9',
    hfModelId: 'BAAI/bge-base-en-v1.5',
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
    const templates = assembly.stacks.map((stack) => stack.templateFullPath);
    expect(templates).toHaveLength(2);
    // One run over every template and region: cfn-lint checks each resource type exists in each region.
    const run = spawnSync(
      'cfn-lint',
      [
        '--config-file',
        CONFIG_FILE,
        '--format',
        'parseable',
        '--regions',
        ...DEPLOYABLE_REGIONS,
        '--',
        ...templates,
      ],
      { encoding: 'utf8' },
    );
    expect(run.error).toBeUndefined();
    expect(`${run.stdout}${run.stderr}`.trim()).toBe('');
    expect(run.status).toBe(0);
  }, 300_000);

  it('carry no unsuppressed cdk-nag error or warning as cdk synth builds them (no account, partition literals)', () => {
    const findings = assembly.stacks
      .flatMap((stack) => stack.messages)
      .filter((message) => message.level !== 'info' && String(message.entry.data).startsWith('AwsSolutions-'))
      .map((message) => `${message.id}: ${String(message.entry.data).split(':')[0]}`);
    expect(findings).toEqual([]);
  });
});
