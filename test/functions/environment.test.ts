import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadEnvironment } from '../../functions/config/environment.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { aLambdaContext, aPipeline, eventSample, FINALIZE_QUEUE_URL, WORK_QUEUE_URL } from './factories.ts';

const valid = {
  SLUICE_BUCKET: 'sluice-data',
  SLUICE_RUNS_TABLE: 'sluice-runs',
  SLUICE_WORK_QUEUE_URL: WORK_QUEUE_URL,
  SLUICE_FINALIZE_QUEUE_URL: FINALIZE_QUEUE_URL,
  SLUICE_PIPELINES: JSON.stringify([aPipeline('docs'), aPipeline('faq')]),
  PATH: '/usr/bin',
};

describe('loadEnvironment', () => {
  it('reads the env contract into a typed object, pipeline configs validated with their defaults', () => {
    const env = loadEnvironment(valid);

    expect(env).toMatchObject({
      bucket: 'sluice-data',
      runsTable: 'sluice-runs',
      workQueueUrl: WORK_QUEUE_URL,
      finalizeQueueUrl: FINALIZE_QUEUE_URL,
    });
    expect([...env.pipelines.keys()]).toEqual(['docs', 'faq']);
    expect(env.pipelines.get('docs')?.workers.maxReceiveCount).toBe(5);
    expect(env.sagemakerEndpointUrl).toBeUndefined();
  });

  it('takes an endpoint override for the SageMaker runtime', () => {
    const env = loadEnvironment({ ...valid, SLUICE_SAGEMAKER_ENDPOINT_URL: 'http://127.0.0.1:8080' });

    expect(env.sagemakerEndpointUrl).toBe('http://127.0.0.1:8080');
  });

  it.each([
    [
      { SLUICE_BUCKET: undefined },
      'environment: SLUICE_BUCKET: is not set: set it to the name of the Sluice bucket',
    ],
    [{ SLUICE_RUNS_TABLE: '  ' }, 'environment: SLUICE_RUNS_TABLE: is empty'],
    [{ SLUICE_WORK_QUEUE_URL: 'sluice-work' }, 'environment: SLUICE_WORK_QUEUE_URL: must be an http(s) URL'],
    [{ SLUICE_PIPELINES: '[{"name":' }, 'environment: SLUICE_PIPELINES: is not valid JSON'],
    [{ SLUICE_PIPELINES: '[]' }, 'environment: SLUICE_PIPELINES: must be a non-empty JSON array'],
    [
      { SLUICE_PIPELINES: JSON.stringify([aPipeline('docs', { workers: { maxRecieveCount: 3 } as never })]) },
      'environment: SLUICE_PIPELINES[0]: workers.maxRecieveCount: unknown key',
    ],
    [
      { SLUICE_PIPELINES: JSON.stringify([aPipeline('docs'), aPipeline('docs')]) },
      'environment: SLUICE_PIPELINES[1]: pipeline docs appears twice',
    ],
    [{ SLUICE_BUKET: 'typo' }, 'environment: SLUICE_BUKET: unknown variable'],
    [
      { SLUICE_PIPELINES: undefined },
      'environment: SLUICE_PIPELINES_FILE: is not set: set it to the pipelines file deployed with the function (infra does), or set SLUICE_PIPELINES to a JSON array',
    ],
    [
      { SLUICE_PIPELINES_FILE: 'sluice-pipelines.json' },
      'environment: SLUICE_PIPELINES: set either SLUICE_PIPELINES or SLUICE_PIPELINES_FILE, not both',
    ],
    [
      { SLUICE_PIPELINES_SHA256: 'a'.repeat(64) },
      'environment: SLUICE_PIPELINES_SHA256: only applies with SLUICE_PIPELINES_FILE: unset it',
    ],
  ])('refuses %j with one line naming the variable and the fix', (change, message) => {
    const env: Record<string, string | undefined> = { ...valid, ...change };

    expect(() => loadEnvironment(env)).toThrow(ConfigError);
    expect(() => loadEnvironment(env)).toThrow(message);
  });
});

describe('loadEnvironment with the pipelines file deployed functions carry', () => {
  const FILE = 'sluice-pipelines.json';
  let taskRoot: string;
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  /** Writes the file into the stand-in code folder and returns the variables infra would set. */
  const bundled = (content: string, name = FILE) => {
    writeFileSync(path.join(taskRoot, name), content);
    const { SLUICE_PIPELINES: _inline, ...rest } = valid;
    return {
      ...rest,
      LAMBDA_TASK_ROOT: taskRoot,
      SLUICE_PIPELINES_FILE: name,
      SLUICE_PIPELINES_SHA256: sha256(content),
    };
  };

  beforeAll(() => {
    taskRoot = mkdtempSync(path.join(tmpdir(), 'sluice-task-root-'));
  });
  afterAll(() => rmSync(taskRoot, { recursive: true, force: true }));

  it('reads the configs from the file in LAMBDA_TASK_ROOT, validated with their defaults', () => {
    const env = loadEnvironment(bundled(JSON.stringify([aPipeline('docs'), aPipeline('faq')], null, 2)));

    expect([...env.pipelines.keys()]).toEqual(['docs', 'faq']);
    expect(env.pipelines.get('faq')?.workers.maxReceiveCount).toBe(5);
  });

  it('takes an absolute path too (a local run pointing at a file of its own)', () => {
    const { LAMBDA_TASK_ROOT: _root, ...vars } = bundled(JSON.stringify([aPipeline('docs')]), 'local.json');

    const env = loadEnvironment({ ...vars, SLUICE_PIPELINES_FILE: path.join(taskRoot, 'local.json') });

    expect([...env.pipelines.keys()]).toEqual(['docs']);
  });

  it('refuses a missing file with one line naming the variable, the path and the fix', () => {
    const env = { ...bundled('[]'), SLUICE_PIPELINES_FILE: 'gone.json' };

    expect(() => loadEnvironment(env)).toThrow(ConfigError);
    expect(() => loadEnvironment(env)).toThrow(
      `environment: SLUICE_PIPELINES_FILE: cannot read ${path.join(taskRoot, 'gone.json')} (ENOENT): deploy the stack again so the file ships with the function`,
    );
  });

  it('refuses a file whose hash is not the one deployed with it, naming both', () => {
    const env = bundled(JSON.stringify([aPipeline('docs')]));
    writeFileSync(path.join(taskRoot, FILE), JSON.stringify([aPipeline('faq')]));

    expect(() => loadEnvironment(env)).toThrow(
      new RegExp(
        `^environment: SLUICE_PIPELINES_FILE: .*${FILE} has sha256 ${sha256(JSON.stringify([aPipeline('faq')]))}, not SLUICE_PIPELINES_SHA256 ${env.SLUICE_PIPELINES_SHA256}: the code and the configuration come from different deployments`,
      ),
    );
  });

  it.each([
    ['[{"name":', 'environment: SLUICE_PIPELINES_FILE: is not valid JSON'],
    ['{}', 'environment: SLUICE_PIPELINES_FILE: must be a non-empty JSON array'],
    [
      JSON.stringify([aPipeline('docs'), aPipeline('docs', { workers: { maxRecieveCount: 3 } as never })]),
      'environment: SLUICE_PIPELINES_FILE[1]: workers.maxRecieveCount: unknown key',
    ],
  ])('refuses the file content %s with one line naming the variable and the entry', (content, message) => {
    const env = bundled(content);

    expect(() => loadEnvironment(env)).toThrow(ConfigError);
    expect(() => loadEnvironment(env)).toThrow(message);
  });

  it.each([
    [{ SLUICE_PIPELINES_SHA256: undefined }, 'environment: SLUICE_PIPELINES_SHA256: is not set'],
    [
      { SLUICE_PIPELINES_SHA256: 'ABC' },
      'environment: SLUICE_PIPELINES_SHA256: must be 64 lowercase hex digits',
    ],
    [{ SLUICE_PIPELINES_FILE: ' ' }, 'environment: SLUICE_PIPELINES_FILE: is empty'],
  ])('refuses %j next to the file', (change, message) => {
    const env: Record<string, string | undefined> = { ...bundled('[]'), ...change };

    expect(() => loadEnvironment(env)).toThrow(message);
  });
});

describe('deployed handlers', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('can be imported without an environment, and report the missing variable when invoked', async () => {
    vi.stubEnv('SLUICE_BUCKET', undefined);
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
    const [plan, work, finalize] = await Promise.all([
      import('../../functions/plan.ts'),
      import('../../functions/work.ts'),
      import('../../functions/finalize.ts'),
    ]);

    expect(typeof plan.handler).toBe('function');
    expect(typeof work.handler).toBe('function');
    expect(typeof finalize.handler).toBe('function');
    await expect(finalize.handler(eventSample('sqs-finalize.json'), aLambdaContext())).rejects.toThrow(
      'environment: SLUICE_BUCKET: is not set',
    );
  });

  it('report a pipelines file missing from the code folder when invoked', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'sluice-task-root-'));
    const { SLUICE_PIPELINES: _inline, PATH: _path, ...rest } = valid;
    for (const [name, value] of Object.entries(rest)) vi.stubEnv(name, value);
    vi.stubEnv('SLUICE_PIPELINES', undefined);
    vi.stubEnv('SLUICE_PIPELINES_FILE', 'sluice-pipelines.json');
    vi.stubEnv('SLUICE_PIPELINES_SHA256', 'a'.repeat(64));
    vi.stubEnv('LAMBDA_TASK_ROOT', root);
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
    const { handler } = await import('../../functions/finalize.ts');

    try {
      await expect(handler(eventSample('sqs-finalize.json'), aLambdaContext())).rejects.toThrow(
        `environment: SLUICE_PIPELINES_FILE: cannot read ${path.join(root, 'sluice-pipelines.json')} (ENOENT)`,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
