import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../functions/config/environment.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { aPipeline, FINALIZE_QUEUE_URL, WORK_QUEUE_URL } from './factories.ts';

const COMPUTE_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work-compute';

/** A recommend pipeline as a user writes it: every field but the name has a default. */
const recommend = { name: 'recommend', kind: 'recommend' };

function environmentOf(pipelines: readonly unknown[], computeQueueUrl?: string) {
  return {
    SLUICE_BUCKET: 'sluice-data',
    SLUICE_RUNS_TABLE: 'sluice-runs',
    SLUICE_WORK_QUEUE_URL: WORK_QUEUE_URL,
    SLUICE_WORK_COMPUTE_QUEUE_URL: computeQueueUrl,
    SLUICE_FINALIZE_QUEUE_URL: FINALIZE_QUEUE_URL,
    SLUICE_PIPELINES: JSON.stringify(pipelines),
  };
}

describe('loadEnvironment: the compute queue of a split stack (issue 14)', () => {
  it('reads the compute queue of a stack whose pipelines split between two work functions', () => {
    const env = loadEnvironment(environmentOf([aPipeline('docs'), recommend], COMPUTE_QUEUE_URL));

    expect(env.workQueueUrl).toBe(WORK_QUEUE_URL);
    expect(env.workComputeQueueUrl).toBe(COMPUTE_QUEUE_URL);
  });

  it('needs none where every pipeline is in one pool', () => {
    expect(loadEnvironment(environmentOf([aPipeline('docs')])).workComputeQueueUrl).toBeUndefined();
    expect(loadEnvironment(environmentOf([recommend])).workComputeQueueUrl).toBeUndefined();
  });

  it('refuses a split stack without it, in one line naming the pipelines of each pool', () => {
    const env = environmentOf([aPipeline('docs'), recommend]);

    expect(() => loadEnvironment(env)).toThrow(ConfigError);
    expect(() => loadEnvironment(env)).toThrow(
      /^environment: SLUICE_WORK_COMPUTE_QUEUE_URL: is not set, but pipelines recommend work from the compute queue beside docs: set it/,
    );
  });

  it('lets a function that sends no units (the capacity sweeper) run without it', () => {
    const env = loadEnvironment(environmentOf([aPipeline('docs'), recommend]), { sendsUnits: false });

    expect(env.workComputeQueueUrl).toBeUndefined();
  });

  it('refuses it where the pipelines do not split, so code and stack cannot disagree on where units go', () => {
    const env = environmentOf([aPipeline('docs'), aPipeline('faq')], COMPUTE_QUEUE_URL);

    expect(() => loadEnvironment(env)).toThrow(
      /^environment: SLUICE_WORK_COMPUTE_QUEUE_URL: is set, but the pipelines do not split between two work queues/,
    );
  });

  it('refuses a value that is not a URL, like the work queue', () => {
    const env = environmentOf([aPipeline('docs'), recommend], 'sluice-work-compute');

    expect(() => loadEnvironment(env)).toThrow(
      'environment: SLUICE_WORK_COMPUTE_QUEUE_URL: must be an http(s) URL',
    );
  });
});
