import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { queueOfPipeline, workPoolOf, workPoolsOf } from '../../shared/capacity/work-pools.ts';
import type { WorkerConcurrency } from '../../shared/capacity/worker-concurrency.ts';
import { workerScalingOf } from '../../shared/capacity/workers.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';

const shipped = (name: string): PipelineConfig =>
  parsePipelineConfig(JSON.parse(readFileSync(`pipelines/${name}.json`, 'utf8')), name);

const withHosting = (config: PipelineConfig, hosting: 'in-worker' | 'serverless' | 'instance') => {
  if (config.kind !== 'score') throw new Error('not a score pipeline');
  return {
    ...config,
    name: `${config.name}-${hosting}`,
    model: { ...config.model, hosting },
  } as PipelineConfig;
};

const withWorkers = (config: PipelineConfig, maxConcurrency: number): PipelineConfig => ({
  ...config,
  workers: { ...config.workers, maxConcurrency },
});

const noConcurrency: WorkerConcurrency = {
  current: async () => undefined,
  set: async () => ({ applied: true }),
};

describe('work pools', () => {
  const docs = shipped('docs');
  const creditRisk = shipped('credit-risk');
  const recommend = shipped('recommend');
  const generate = shipped('generate-triage');

  it('puts workers that wait on an endpoint in the endpoint pool and workers that compute in the compute pool', () => {
    expect(workPoolOf(docs)).toBe('endpoint');
    expect(workPoolOf(generate)).toBe('endpoint');
    expect(workPoolOf(withHosting(creditRisk, 'instance'))).toBe('endpoint');
    expect(workPoolOf(withHosting(creditRisk, 'serverless'))).toBe('endpoint');
    expect(workPoolOf(withHosting(creditRisk, 'in-worker'))).toBe('compute');
    expect(workPoolOf(recommend)).toBe('compute');
  });

  it('splits a stack only when it has pipelines of both pools', () => {
    expect(workPoolsOf([docs, generate]).split).toBe(false);
    expect(workPoolsOf([recommend]).split).toBe(false);
    expect(workPoolsOf([recommend]).work.map((p) => p.name)).toEqual(['recommend']);
    const mixed = workPoolsOf([docs, recommend, generate]);
    expect(mixed.split).toBe(true);
    expect(mixed.work.map((p) => p.name)).toEqual([docs.name, generate.name]);
    expect(mixed.compute.map((p) => p.name)).toEqual([recommend.name]);
  });

  it('routes a unit to the compute queue only in a split stack', () => {
    expect(queueOfPipeline(workPoolsOf([docs, recommend]), recommend.name)).toBe('compute');
    expect(queueOfPipeline(workPoolsOf([docs, recommend]), docs.name)).toBe('work');
    expect(queueOfPipeline(workPoolsOf([recommend]), recommend.name)).toBe('work');
    expect(queueOfPipeline(workPoolsOf([docs, recommend]), 'no-such-pipeline')).toBe('work');
  });

  it("sizes the work queue's worker ceiling from the endpoint pool alone in a split stack", () => {
    const scaling = workerScalingOf(noConcurrency, [withWorkers(docs, 8), withWorkers(recommend, 200)], []);
    expect(scaling.ceiling).toBe(8);
    // Not split: the one work function serves everything, so its ceiling counts everything.
    expect(workerScalingOf(noConcurrency, [withWorkers(recommend, 200)], []).ceiling).toBe(200);
  });
});
