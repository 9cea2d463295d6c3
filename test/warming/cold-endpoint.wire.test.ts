import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { runLocalPipeline } from '../../cli/local-run.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';

/**
 * `sluice run` against a model server scaled to zero, over the real SageMakerRuntimeClient
 * on a unit thread: units meet SageMaker's no-capacity answer, go back to the local queue
 * with a delay, and run once the copy is up; or, when no copy ever comes, the run fails with
 * the warm-up limit's one line. The delays and the limit are shortened for the test (the
 * config's warm-up limit cannot go under 60 s).
 */
describe('a local run on a cold endpoint', () => {
  let work: string;
  let server: ModelServer | undefined;
  const input = 'events/data/docs-sample.jsonl';
  const records = 300;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-cold-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('defers units while the endpoint warms up, then embeds every record', async () => {
    const config = await loadPipelineConfig('pipelines', 'docs');
    const component = inferenceComponentNameOf(config.kind === 'embed' ? config.endpoint.name : '');
    server = await startModelServer({
      backend: new HashEmbedder(384),
      capacity: { scaleToZero: true, warmupSeconds: 2, wakeOnInvoke: true, componentName: component },
    });
    const lines: string[] = [];

    const { summary, deadLetters } = await runLocalPipeline({
      home: openHome(path.join(work, 'warms')),
      config,
      paths: [input],
      endpointUrl: server.url,
      threads: 1,
      warming: { firstDelaySeconds: 1, limitSeconds: 60 },
      log: (line) => lines.push(line),
    });

    expect(summary.status).toBe('succeeded');
    expect(summary.counts).toMatchObject({ records, rejected: 0, failedUnits: 0 });
    expect(summary.counts.embedded + summary.counts.skippedUnchanged).toBe(summary.counts.chunks);
    expect(summary.stats.warmingDeferrals).toBeGreaterThan(0);
    expect(deadLetters).toBe(0);
    expect(lines.some((line) => line.includes('endpoint has no capacity yet'))).toBe(true);
    // Refused for want of capacity, then served: the workers named the inference component.
    const capacity = server.stats().capacity;
    expect(capacity).toMatchObject({ state: 'ready', currentCopies: 1, requests: [1] });
    expect(capacity.noCapacity).toBeGreaterThan(0);
    expect(server.stats().served).toBeGreaterThan(0);
  });

  it('fails the run with the warm-up limit as its reason when capacity never comes', async () => {
    const config = await loadPipelineConfig('pipelines', 'docs');
    server = await startModelServer({ backend: new HashEmbedder(384), capacity: { scaleToZero: true } });

    const { summary, deadLetters } = await runLocalPipeline({
      home: openHome(path.join(work, 'never')),
      config,
      paths: [input],
      endpointUrl: server.url,
      threads: 0,
      warming: { firstDelaySeconds: 1, limitSeconds: 2 },
      log: () => {},
    });

    expect(summary.status).toBe('failed');
    expect(summary.counts.records).toBe(0);
    expect(summary.failedUnits.length).toBeGreaterThan(0);
    for (const unit of summary.failedUnits) {
      expect(unit.lastError).toBe(
        "endpoint sluice-docs-embed had no capacity for 2 s (capacity.warmupLimitSeconds); check the capacity sweeper and the endpoint's events",
      );
    }
    expect(deadLetters).toBe(0);
    expect(server.stats().served).toBe(0);
  });
});
