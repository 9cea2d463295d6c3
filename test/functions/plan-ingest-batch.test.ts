import { describe, expect, it } from 'vitest';
import { readIngestBatch, scheduledRunOf } from '../../functions/plan-ingest-batch.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { anSqsRecord, aPipeline, SAMPLE_BUCKET, s3NotificationBody, testObservability } from './factories.ts';

const rules = {
  bucket: SAMPLE_BUCKET,
  pipelines: new Map([
    ['docs', parsePipelineConfig(aPipeline('docs'))],
    ['faq', parsePipelineConfig(aPipeline('faq'))],
  ]),
};

const scheduledBody = (pipeline: string) =>
  JSON.stringify({
    kind: 'scheduled-run',
    pipeline,
    prefix: 'datasets/x/',
    scheduledTime: '2026-12-07T02:00:00Z',
  });

describe('readIngestBatch', () => {
  it('groups the objects of every message by pipeline, so each pipeline makes one run', () => {
    const { logger } = testObservability();
    const records = [
      anSqsRecord(s3NotificationBody('incoming/docs/a.jsonl')),
      anSqsRecord(s3NotificationBody('incoming/faq/b.jsonl')),
      anSqsRecord(s3NotificationBody('incoming/docs/c.jsonl')),
    ];
    const batch = readIngestBatch(logger, rules, records);
    expect(batch.keys.of('docs').keys.sort()).toEqual(['incoming/docs/a.jsonl', 'incoming/docs/c.jsonl']);
    expect(batch.keys.of('faq').keys).toEqual(['incoming/faq/b.jsonl']);
    expect(batch.entries.get(records[0]!.messageId)).toEqual({ pipelines: new Set(['docs']) });
    expect(batch.plans.size).toBe(0);
  });

  it('keeps every message: skipped objects give no pipeline, unreadable bodies an invalid entry', () => {
    const obs = testObservability();
    const records = [
      anSqsRecord(s3NotificationBody('incoming/unknown/a.jsonl')),
      anSqsRecord(s3NotificationBody('incoming/docs/a.jsonl', 'another-bucket')),
      anSqsRecord('not json'),
      anSqsRecord(scheduledBody('docs')),
    ];
    const batch = readIngestBatch(obs.logger, rules, records);
    expect(batch.entries.size).toBe(4);
    expect(batch.entries.get(records[0]!.messageId)).toEqual({ pipelines: new Set() });
    expect(batch.entries.get(records[1]!.messageId)).toEqual({ pipelines: new Set() });
    expect(batch.entries.get(records[2]!.messageId)).toHaveProperty('invalid');
    expect(batch.entries.get(records[3]!.messageId)).toHaveProperty('scheduled.pipeline', 'docs');
    expect(obs.logged('warn').filter((line) => line.includes('skipped'))).toHaveLength(2);
  });
});

describe('scheduledRunOf', () => {
  it('reads a scheduled run, rejects a malformed one and leaves anything else to the S3 parser', () => {
    expect(scheduledRunOf(scheduledBody('docs'))).toHaveProperty('scheduled.prefix', 'datasets/x/');
    expect(scheduledRunOf(JSON.stringify({ kind: 'scheduled-run', pipeline: 'docs' }))).toHaveProperty(
      'invalid',
    );
    expect(scheduledRunOf('{"Records":[]}')).toBeUndefined();
    expect(scheduledRunOf('not json')).toBeUndefined();
  });
});
