import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { type PipelineConfig, pipelineConfigSchema } from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import {
  IngestedKeys,
  type IngestRules,
  planNotifiedKeys,
  planScheduledRun,
  routeNotifiedObject,
} from '../../shared/plan/plan-ingest.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { aPipeline } from '../functions/factories.ts';

const pipeline = (name: string, incremental = true): PipelineConfig =>
  pipelineConfigSchema.parse(aPipeline(name, { incremental: { enabled: incremental } }));

const rules: IngestRules = {
  bucket: 'sluice-data',
  pipelines: new Map([
    ['docs', pipeline('docs')],
    ['faq', pipeline('faq', false)],
  ]),
};
const created = (key: string, bucket = 'sluice-data') => ({ bucket, key, eventName: 'ObjectCreated:Put' });
const removed = (key: string) => ({ bucket: 'sluice-data', key, eventName: 'ObjectRemoved:Delete' });

/** Ports that fail the test if planning reaches them. */
const untouched = {
  runs: new Proxy({} as RunStore, {
    get: (_, method) => () => Promise.reject(new Error(`runs.${String(method)} called`)),
  }),
  queue: new Proxy({} as WorkQueue, {
    get: (_, method) => () => Promise.reject(new Error(`queue.${String(method)} called`)),
  }),
};

describe('routeNotifiedObject', () => {
  it('sends uploads and deletions under incoming/<pipeline>/ to that pipeline', () => {
    expect(routeNotifiedObject(rules, created('incoming/docs/a.jsonl'))).toEqual({
      pipeline: 'docs',
      removal: false,
    });
    expect(routeNotifiedObject(rules, removed('incoming/docs/a.jsonl'))).toEqual({
      pipeline: 'docs',
      removal: true,
    });
  });

  it('skips what no retry could plan, saying why', () => {
    const skip = (object: { bucket: string; key: string; eventName: string }) =>
      (routeNotifiedObject(rules, object) as { skip?: string }).skip;
    expect(skip({ ...created('incoming/docs/a'), eventName: 'ObjectTagging:Put' })).toBe(
      'ObjectTagging:Put is neither an object creation nor a deletion',
    );
    expect(skip(created('incoming/docs/a', 'elsewhere'))).toBe(
      'bucket elsewhere is not the Sluice bucket sluice-data',
    );
    expect(skip(created('datasets/a.jsonl'))).toBe('not under incoming/<pipeline>/');
    expect(skip(created('incoming/other/a.jsonl'))).toBe(
      'pipeline other is not configured (known: docs, faq)',
    );
    expect(skip(removed('incoming/faq/a.jsonl'))).toBe(
      'pipeline faq keeps no source manifests (it is not incremental embedding): nothing to remove',
    );
    expect(skip(created('incoming/faq/a.jsonl'))).toBeUndefined();
  });
});

describe('IngestedKeys', () => {
  it('gathers each pipeline keys once, uploads apart from deletions', () => {
    const keys = new IngestedKeys();
    keys.add('docs', 'incoming/docs/a', false);
    keys.add('docs', 'incoming/docs/a', false);
    keys.add('docs', 'incoming/docs/b', true);
    keys.add('faq', 'incoming/faq/c', false);
    expect(keys.of('docs')).toEqual({ keys: ['incoming/docs/a'], removedKeys: ['incoming/docs/b'] });
    expect(keys.of('faq')).toEqual({ keys: ['incoming/faq/c'], removedKeys: [] });
    expect(keys.of('none')).toEqual({ keys: [], removedKeys: [] });
  });
});

describe('planNotifiedKeys', () => {
  it('plans nothing for deletion notices alone when every key exists again', async () => {
    const store = new MemoryObjectStore();
    await store.put('incoming/docs/a.jsonl', '{"id":"1","text":"back"}\n');
    const outcome = await planNotifiedKeys(
      { store, ...untouched },
      rules.pipelines.get('docs')!,
      { keys: [], removedKeys: ['incoming/docs/a.jsonl'] },
      () => new Date('2026-12-07T00:00:00Z'),
    );
    expect(outcome).toEqual({ existsAgain: true });
  });

  it('plans a run when one of the deleted keys is still gone', async () => {
    const store = new MemoryObjectStore();
    await store.put('incoming/docs/a.jsonl', '{"id":"1","text":"back"}\n');
    await expect(
      planNotifiedKeys(
        { store, ...untouched },
        rules.pipelines.get('docs')!,
        { keys: [], removedKeys: ['incoming/docs/a.jsonl', 'incoming/docs/gone.jsonl'] },
        () => new Date('2026-12-07T00:00:00Z'),
      ),
    ).rejects.toThrow(/called/);
  });
});

describe('planScheduledRun', () => {
  it('refuses a pipeline that is not configured, naming the known ones', async () => {
    const outcome = planScheduledRun(
      { store: new MemoryObjectStore(), ...untouched },
      rules.pipelines,
      { pipeline: 'nope', prefix: 'datasets/' },
      () => new Date(),
    );
    await expect(outcome).rejects.toBeInstanceOf(ConfigError);
    await expect(outcome).rejects.toThrow(
      'scheduled run: pipeline nope is not configured (known: docs, faq)',
    );
  });
});
