import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { startLocalRuntime } from '../../cli/local-run.ts';
import { seedBundle } from '../../cli/seed-bundle.ts';
import { stageInputs } from '../../cli/stage-inputs.ts';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { newRunId } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import { ModelUnusable } from '../../shared/scoring/errors.ts';
import { InWorkerScoringEndpoint } from '../../shared/scoring/in-worker/in-worker-scoring-endpoint.ts';
import { XgboostModelCache } from '../../shared/scoring/in-worker/model-cache.ts';
import { modelSummaryOf, modelVersionOf } from '../../shared/scoring/model-pin.ts';
import { readTable } from '../faults/support/run-tables.ts';
import { streamingBody } from '../support/sdk-bodies.ts';

const MODEL_KEY = 'models/credit-risk/model.json';
const MULTICLASS = 'events/fixtures/xgboost/multiclass/model.json';
const LIMITS = { maxModelBytes: 64 * 1024 * 1024 };
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

describe('model_version', () => {
  it('is the VersionId on a versioned bucket, the ETag without versions, the content hash locally', () => {
    expect(modelVersionOf('v:3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY')).toBe('3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY');
    expect(modelVersionOf('e:"9b2cf535f27731c974343645a3985328"')).toBe(
      'etag:9b2cf535f27731c974343645a3985328',
    );
    const hash = 'a'.repeat(32);
    expect(modelVersionOf(`${hash}.123-456-789-101`)).toBe(`sha256:${hash}`);
    expect(modelVersionOf(hash)).toBe(`sha256:${hash}`);
    expect(modelSummaryOf('models/m.json', { version: 'v:abc', etag: '"e1"' })).toEqual({
      key: 'models/m.json',
      version: 'abc',
      versionId: 'abc',
      etag: '"e1"',
    });
    expect(modelSummaryOf('models/m.json', { version: `${hash}.1-2-3-4` })).toEqual({
      key: 'models/m.json',
      version: `sha256:${hash}`,
      sha256: hash,
    });
  });
});

describe('XgboostModelCache with a pinned version', () => {
  const s3 = mockClient(S3Client);
  afterEach(() => s3.reset());

  it('reads the model from S3 by the VersionId the run pinned, once per worker', async () => {
    const bytes = await readFile(MULTICLASS);
    s3.on(GetObjectCommand).callsFake(async () => ({
      Body: streamingBody(bytes),
      ContentLength: bytes.byteLength,
    }));
    const store = new S3ObjectStore({ client: s3 as unknown as S3Client, bucket: 'data' });
    const endpoint = new InWorkerScoringEndpoint({
      store,
      modelKey: 'models/tri/model.json',
      cache: new XgboostModelCache(),
      limits: LIMITS,
    }).atVersion('v:pinned-1');

    await endpoint.model();
    await endpoint.model();

    expect(s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'data', Key: 'models/tri/model.json', Range: 'bytes=0-', VersionId: 'pinned-1' },
    ]);
    // A pinned version never changes: no HEAD to revalidate it.
    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(0);
  });

  it('fails with one line naming the version when the pinned version is gone from the bucket', async () => {
    s3.on(GetObjectCommand).rejects(
      Object.assign(new NoSuchKey({ message: 'The specified version does not exist.', $metadata: {} }), {
        name: 'NoSuchVersion',
      }),
    );
    const store = new S3ObjectStore({ client: s3 as unknown as S3Client, bucket: 'data' });
    const cache = new XgboostModelCache();

    const load = cache.get(store, 'models/tri/model.json', LIMITS, 'v:gone-1');

    await expect(load).rejects.toThrow(ModelUnusable);
    await expect(load).rejects.toThrow(
      /^model\.modelKey: models\/tri\/model\.json at version gone-1, pinned when the run was planned, can no longer be read \(.*\); start a new run to score with the current model$/,
    );
  });

  it('keeps scoring with the pinned version after the object is replaced, and the current one without a pin', async () => {
    const store = new MemoryObjectStore();
    const old = await readFile(MULTICLASS);
    await store.put('m.json', old);
    const pinned = (await store.head('m.json', { version: true }))!.version!;
    const cache = new XgboostModelCache({ revalidateMs: 0 });
    const before = await cache.get(store, 'm.json', LIMITS, pinned);

    const model = JSON.parse(old.toString('utf8'));
    model.learner.learner_model_param.base_score = '[5E-1,5E-1,5E-1]';
    await store.put('m.json', JSON.stringify(model));

    // The memory store keeps no earlier versions: a worker that had not read the pin yet fails in one line.
    await expect(new XgboostModelCache().get(store, 'm.json', LIMITS, pinned)).rejects.toThrow(
      /pinned when the run was planned, can no longer be read/,
    );
    // Held by version: the same compiled model, not the replacement.
    expect(await cache.get(store, 'm.json', LIMITS, pinned)).toBe(before);
    expect((await cache.get(store, 'm.json', LIMITS)).modelId).not.toBe(before.modelId);
  });
});

describe('a model replaced while a local run is working', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-model-version-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** The shipped pipelines copied, credit-risk scored in the worker in units of about 1,000 rows x features. */
  async function pipelinesIn(dir: string): Promise<{ dir: string; config: ScorePipelineConfig }> {
    const pipelines = path.join(dir, 'pipelines');
    await cp('pipelines', pipelines, { recursive: true });
    const file = path.join(pipelines, 'credit-risk.json');
    const raw = JSON.parse(await readFile(file, 'utf8'));
    raw.model.hosting = 'in-worker';
    raw.planning = { ...raw.planning, targetUnitTokens: 1000 };
    await writeFile(file, JSON.stringify(raw));
    return {
      dir: pipelines,
      config: (await loadPipelineConfig(pipelines, 'credit-risk')) as ScorePipelineConfig,
    };
  }

  interface RunContext {
    readonly home: ReturnType<typeof openHome>;
    readonly dir: string;
  }

  /** Plans a run of 300 sample rows; `between` runs after planning and before any unit is worked. */
  async function runWith(label: string, between: (this: RunContext) => Promise<void>) {
    const home = openHome(path.join(work, label));
    const { dir, config } = await pipelinesIn(path.join(work, label));
    const input = path.join(work, `${label}.csv`);
    const lines = (await readFile('events/data/credit-sample.csv', 'utf8')).split('\n');
    await writeFile(input, `${lines.slice(0, 301).join('\n')}\n`);
    const runtime = await startLocalRuntime({ home, config, pipelinesDir: dir, log: () => {}, threads: 0 });
    try {
      await stageInputs(home.store, [{ file: input, key: 'incoming/credit-risk/in.csv' }]);
      const runId = newRunId(new Date());
      const plan = await planRun(
        { store: home.store, runs: home.runs, queue: runtime.queue },
        runtime.config,
        {
          runId,
          trigger: 'local',
          keys: ['incoming/credit-risk/in.csv'],
          removedKeys: [],
          now: new Date(),
        },
      );
      await between.call({ home, dir });
      await runtime.queue.drain();
      const summary = runtime.summaries.get(runId);
      const rows = (await readTable(home.store, 'scores', 'credit-risk', runId)) as {
        line: bigint | number;
        score: number;
        model_version: string | null;
      }[];
      rows.sort((a, b) => Number(a.line) - Number(b.line));
      return { plan, summary, rows, home };
    } finally {
      await runtime.close();
    }
  }

  it('scores every row with the version pinned at planning, across units', async () => {
    const original = await readFile(path.join('pipelines', ...MODEL_KEY.split('/')));
    const retrained = JSON.parse(original.toString('utf8'));
    retrained.learner.learner_model_param.base_score = '5E-1';
    const retrainedText = JSON.stringify(retrained);

    // The reference: the same rows, no replacement.
    const reference = await runWith('reference', async () => {});
    // Another `sluice run` of the pipeline seeds a retrained model after this run was planned.
    let replacedFiles: unknown[] = [];
    const replaced = await runWith('replaced', async function (this: RunContext) {
      await writeFile(path.join(this.dir, ...MODEL_KEY.split('/')), retrainedText);
      const config = await loadPipelineConfig(this.dir, 'credit-risk');
      replacedFiles = await seedBundle(this.home, config, this.dir, () => {});
    });

    expect(replacedFiles).toHaveLength(1);
    expect(await readFile(replaced.home.store.pathOf(MODEL_KEY), 'utf8')).toBe(retrainedText);
    expect(replaced.plan.units.length).toBeGreaterThan(1);
    expect(replaced.summary?.status).toBe('succeeded');
    const pinned = `sha256:${sha256(original).slice(0, 32)}`;
    expect(replaced.summary?.model).toMatchObject({ key: MODEL_KEY, version: pinned });
    expect(replaced.rows).toHaveLength(300);
    expect(new Set(replaced.rows.map((r) => r.model_version))).toEqual(new Set([pinned]));
    expect(replaced.rows.map((r) => r.score)).toEqual(reference.rows.map((r) => r.score));
  });

  it('fails the units with the reason when the pinned version is gone', async () => {
    const original = await readFile(path.join('pipelines', ...MODEL_KEY.split('/')));
    const retrained = JSON.parse(original.toString('utf8'));
    retrained.learner.learner_model_param.base_score = '5E-1';
    const gone = await runWith('gone', async function (this: RunContext) {
      await writeFile(path.join(this.dir, ...MODEL_KEY.split('/')), JSON.stringify(retrained));
      await seedBundle(this.home, await loadPipelineConfig(this.dir, 'credit-risk'), this.dir, () => {});
      // The kept earlier version is deleted too (a deployed bucket's noncurrent version expired).
      await unlink(this.home.store.versionFileOf(original)!);
    });

    expect(gone.summary?.status).toBe('failed');
    expect(gone.rows).toEqual([]);
    const failed = gone.summary?.failedUnits ?? [];
    expect(failed.length).toBeGreaterThan(0);
    for (const unit of failed)
      expect(unit.lastError).toMatch(
        /model\.modelKey: models\/credit-risk\/model\.json at version sha256:[0-9a-f]{32}, pinned when the run was planned, can no longer be read/,
      );
  });
});
