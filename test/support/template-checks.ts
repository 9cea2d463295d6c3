import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Stack } from 'aws-cdk-lib';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { expect } from 'vitest';
import { DEPLOYABLE_REGIONS, REGIONS_WITHOUT_INFERENCE_COMPONENTS } from '../../infra/images/registries.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The regions Sluice deploys to whose CloudFormation has `AWS::SageMaker::InferenceComponent`. */
export const REGIONS_WITH_INFERENCE_COMPONENTS: readonly string[] = DEPLOYABLE_REGIONS.filter(
  (region) => !REGIONS_WITHOUT_INFERENCE_COMPONENTS.includes(region),
);

/**
 * Expects no AwsSolutions cdk-nag error or warning on `stack`: every finding is either
 * fixed or suppressed with a reason. The app must have `AwsSolutionsChecks` applied and be
 * synthesized (`Template.fromStack` synthesizes it).
 */
export function expectNoNagFindings(stack: Stack): void {
  const annotations = Annotations.fromStack(stack);
  expect(annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  expect(annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
}

/**
 * Expects cfn-lint, with the repository's `.cfnlintrc.yaml` (what it ignores and why), to
 * find nothing in `template` in any of `regions`; cfn-lint checks each resource type exists
 * in each region, so a template with inference components is linted where they exist.
 * `regions` defaults to those. Fails with the install hint when cfn-lint is missing.
 */
export function expectCfnLintClean(
  template: Template,
  regions: readonly string[] = REGIONS_WITH_INFERENCE_COMPONENTS,
): void {
  const version = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' });
  expect(
    version.error,
    'cfn-lint is not installed: pip install cfn-lint (README, Deploying)',
  ).toBeUndefined();
  const scratch = mkdtempSync(path.join(tmpdir(), 'sluice-cfn-lint-'));
  try {
    const file = path.join(scratch, 'template.json');
    writeFileSync(file, JSON.stringify(template.toJSON(), null, 1));
    const run = spawnSync(
      'cfn-lint',
      [
        '--config-file',
        path.join(repoRoot, '.cfnlintrc.yaml'),
        '--format',
        'parseable',
        '--regions',
        ...regions,
        '--',
        file,
      ],
      { encoding: 'utf8' },
    );
    expect(run.error).toBeUndefined();
    expect(`${run.stdout}${run.stderr}`.trim()).toBe('');
    expect(run.status).toBe(0);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
