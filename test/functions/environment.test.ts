import { afterEach, describe, expect, it, vi } from 'vitest';
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
  ])('refuses %j with one line naming the variable and the fix', (change, message) => {
    const env: Record<string, string | undefined> = { ...valid, ...change };

    expect(() => loadEnvironment(env)).toThrow(ConfigError);
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
});
