import { readFile } from 'node:fs/promises';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { XgboostJsonBackend } from '../../cli/model-server/xgboost-backend.ts';
import type { pipelineConfigSchema } from '../../shared/config/pipeline-config.ts';
import { InWorkerScoringEndpoint } from '../../shared/scoring/in-worker/in-worker-scoring-endpoint.ts';
import { anEnvironment, testAdapters } from '../functions/factories.ts';
import { streamingBody } from '../support/sdk-bodies.ts';

const MODEL = 'events/fixtures/xgboost/multiclass/model.json';
const MODEL_KEY = 'models/tri/model.json';

const s3 = mockClient(S3Client);
const sagemaker = mockClient(SageMakerRuntimeClient);

/** A score pipeline as a user writes it, hosted in the worker by default. */
const triPipeline: z.input<typeof pipelineConfigSchema> = {
  name: 'tri',
  kind: 'score',
  featureSpec: {
    features: Array.from({ length: 8 }, (_, i) => ({ column: `c${i}`, type: 'numeric' })),
  },
  featureStats: { key: 'models/tri/feature-stats.json' },
  model: { endpointName: 'sluice-tri', modelKey: MODEL_KEY, scoreClass: 2 },
};

describe('in-worker scoring in the deployed work function', () => {
  afterEach(() => {
    s3.reset();
    sagemaker.reset();
  });

  it('reads the model with one HEAD and one unpinned GET of model.modelKey, then scores with no SageMaker call', async () => {
    const bytes = await readFile(MODEL);
    s3.on(HeadObjectCommand).resolves({ ContentLength: bytes.byteLength, ETag: '"e1"', VersionId: 'v1' });
    s3.on(GetObjectCommand).callsFake(async () => ({
      Body: streamingBody(bytes),
      ContentLength: bytes.byteLength,
    }));
    const env = anEnvironment([], { SLUICE_PIPELINES: JSON.stringify([triPipeline]) });
    const config = env.pipelines.get('tri')!;
    expect(config.kind === 'score' && config.model.hosting).toBe('in-worker');

    const adapters = testAdapters(env);
    const { scoringEndpoint } = adapters.endpointsFor(config);
    expect(scoringEndpoint).toBeInstanceOf(InWorkerScoringEndpoint);
    const rows = await readFile('events/fixtures/xgboost/multiclass/rows.csv', 'utf8');
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };
    const answer = await scoringEndpoint!.score(rows, stats);
    await scoringEndpoint!.score(rows, stats);
    await adapters.endpointsFor(config).scoringEndpoint!.score(rows, stats);

    expect(answer).toBe(XgboostJsonBackend.fromFile(MODEL).score(rows));
    expect(stats.endpointCalls).toBe(0);
    // What the work role must allow: s3:GetObject on the model key (a plain GET, no VersionId).
    expect(s3.commandCalls(HeadObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: expect.any(String), Key: MODEL_KEY },
    ]);
    expect(s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: expect.any(String), Key: MODEL_KEY },
    ]);
    expect(sagemaker.calls()).toHaveLength(0);
  });
});
