import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Aspects } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOYABLE_REGIONS } from '../../infra/images/registries.ts';
import { addSluiceStack } from '../../infra/sluice-app.ts';
import { FIXTURE_ENTRIES } from './sluice-stack-fixture.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIG_FILE = path.join(repoRoot, '.cfnlintrc.yaml');
const cdkContext = JSON.parse(readFileSync(path.join(repoRoot, 'cdk.json'), 'utf8')).context as Record<
  string,
  unknown
>;
const scratch = mkdtempSync(path.join(tmpdir(), 'sluice-cfn-lint-'));

/**
 * The app as `cdk synth` builds it (infra/app.ts: cdk.json's context, no account, the
 * region the CLI defaults to) with `overrides` laid over the context, synthesized with
 * the fixture handlers (the template does not depend on what the handlers contain) and
 * the cdk-nag checks, into its own folder.
 */
async function synthApp(
  name: string,
  env: { account?: string; region: string },
  overrides: Record<string, unknown> = {},
): Promise<CloudAssembly> {
  const app = new App({ context: { ...cdkContext, ...overrides }, outdir: path.join(scratch, name) });
  await addSluiceStack(app, { env, functionEntries: FIXTURE_ENTRIES });
  Aspects.of(app).add(new AwsSolutionsChecks());
  return app.synth();
}

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

let assemblies: CloudAssembly[];

beforeAll(async () => {
  assemblies = [
    // The default deployment: docs and credit-risk, every resource type the stack has.
    await synthApp('default', { region: 'us-east-1' }),
    // Another stack name, region, TEI version and model, as a second team would deploy it.
    await synthApp(
      'dev',
      { account: '123456789012', region: 'eu-west-1' },
      {
        'sluice:stackName': 'SluiceDev',
        'sluice:teiVersion': '1.9',
        'sluice:hfModelId': 'BAAI/bge-base-en-v1.5',
      },
    ),
  ];
}, 300_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the synthesized templates', () => {
  it('pass cfn-lint with zero findings in every region Sluice deploys to (.cfnlintrc.yaml says what is ignored and why)', () => {
    cfnLintVersion();
    const templates = assemblies.flatMap((assembly) =>
      assembly.stacks.map((stack) => stack.templateFullPath),
    );
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
    const findings = assemblies
      .flatMap((assembly) => assembly.stacks)
      .flatMap((stack) => stack.messages)
      .filter((message) => message.level !== 'info' && String(message.entry.data).startsWith('AwsSolutions-'))
      .map((message) => `${message.id}: ${String(message.entry.data).split(':')[0]}`);
    expect(findings).toEqual([]);
  });
});
