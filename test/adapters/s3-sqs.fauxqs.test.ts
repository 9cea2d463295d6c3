import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, type Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { SqsWorkQueue } from '../../shared/adapters/aws/sqs-work-queue.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { ObjectChanged, ObjectRangeError } from '../../shared/errors/errors.ts';
import { type LocalAwsServer, localClientConfig, startFauxqsServer } from '../support/local-aws.ts';
import { aRunId, aUnit } from '../support/run-fixtures.ts';
import { drain } from '../support/streams.ts';

/** The S3 and SQS adapters on the wire, against fauxqs on loopback. */
describe('S3ObjectStore and SqsWorkQueue against fauxqs', () => {
  let server: LocalAwsServer;
  let s3: S3Client;
  let sqs: SQSClient;

  beforeAll(async () => {
    server = await startFauxqsServer();
    s3 = new S3Client({ ...localClientConfig(server.endpoint), forcePathStyle: true, maxAttempts: 1 });
    sqs = new SQSClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  });

  afterAll(async () => {
    s3?.destroy();
    sqs?.destroy();
    await server?.stop();
  });

  describe('S3ObjectStore', () => {
    let store: S3ObjectStore;
    const text = Array.from({ length: 2000 }, (_, i) => `{"id":${i},"text":"record ${i}"}\n`).join('');

    beforeAll(async () => {
      await s3.send(new CreateBucketCommand({ Bucket: 'sluice-wire' }));
      store = new S3ObjectStore({ client: s3, bucket: 'sluice-wire' });
      await store.put('incoming/docs/a.jsonl', text, 'application/x-ndjson');
      await store.put('incoming/docs/b.jsonl', new Uint8Array([1, 2, 3]));
      await store.put('incoming/docs/empty.jsonl', '');
      await store.put('incoming/other/c.jsonl', 'x');
    });

    it('reports the size of an object with its version (its ETag: fauxqs keeps no versions), and nothing for a missing one', async () => {
      expect(await store.head('incoming/docs/a.jsonl')).toEqual({
        key: 'incoming/docs/a.jsonl',
        size: Buffer.byteLength(text),
        version: expect.stringMatching(/^e:"[0-9a-f]+"$/),
        etag: expect.stringMatching(/^"[0-9a-f]+"$/),
      });
      expect(await store.head('incoming/docs/missing.jsonl')).toBeUndefined();
    });

    it('reads back whole objects, and nothing for a missing one', async () => {
      expect(await store.get('incoming/docs/b.jsonl')).toEqual(new Uint8Array([1, 2, 3]));
      expect(await store.get('incoming/docs/missing.jsonl')).toBeUndefined();
    });

    it('reads any split of an object into ranges back to exactly the object', async () => {
      const size = Buffer.byteLength(text);
      const cuts = [0, 1, 999, 1000, 17_000, size - 1, size];
      const parts: string[] = [];
      for (let i = 0; i + 1 < cuts.length; i++) {
        parts.push((await drain(store.readRange('incoming/docs/a.jsonl', cuts[i]!, cuts[i + 1]!))).text);
      }
      expect(parts.join('')).toBe(text);
      expect(parts[1]).toBe(text.slice(1, 999));
      expect((await drain(store.readRange('incoming/docs/a.jsonl', 17_000))).text).toBe(text.slice(17_000));
    });

    it('refuses a range past the end (416, or a short body) instead of reading it empty or short', async () => {
      const size = Buffer.byteLength(text);
      await expect(drain(store.readRange('incoming/docs/a.jsonl', size))).rejects.toBeInstanceOf(
        ObjectRangeError,
      );
      await expect(
        drain(store.readRange('incoming/docs/a.jsonl', size + 10, size + 20)),
      ).rejects.toBeInstanceOf(ObjectRangeError);
      await expect(drain(store.readRange('incoming/docs/a.jsonl', size - 5, size + 100))).rejects.toThrow(
        'reach past the end of the object',
      );
      expect((await drain(store.readRange('incoming/docs/empty.jsonl', 0))).chunks).toEqual([]);
    });

    it('reads a pinned version with If-Match, and fails the read once the object is overwritten', async () => {
      await store.put('incoming/pinned/p.jsonl', 'first version\n');
      const { version } = (await store.head('incoming/pinned/p.jsonl'))!;
      expect(
        (await drain(store.readRange('incoming/pinned/p.jsonl', 6, 13, { version: version! }))).text,
      ).toBe('version');

      await store.put('incoming/pinned/p.jsonl', 'other version\n'); // the same size

      const reading = drain(store.readRange('incoming/pinned/p.jsonl', 0, undefined, { version: version! }));
      await expect(reading).rejects.toBeInstanceOf(ObjectChanged);
      await expect(reading).rejects.toThrow(
        's3://sluice-wire/incoming/pinned/p.jsonl changed since the run was planned',
      );
    });

    it('lists the objects under a prefix in key order, each with the version a HEAD gives (its ETag)', async () => {
      const listed = [];
      for await (const info of store.list('incoming/docs/')) listed.push(info);
      expect(listed).toEqual([
        {
          key: 'incoming/docs/a.jsonl',
          size: Buffer.byteLength(text),
          version: expect.stringMatching(/^e:"/),
        },
        { key: 'incoming/docs/b.jsonl', size: 3, version: expect.stringMatching(/^e:"/) },
        { key: 'incoming/docs/empty.jsonl', size: 0, version: expect.stringMatching(/^e:"/) },
      ]);
      expect(listed[1]!.version).toBe((await store.head('incoming/docs/b.jsonl'))!.version);
    });

    it('follows continuation tokens when a listing spans pages', async () => {
      const paged = new S3ObjectStore({ client: s3, bucket: 'sluice-wire', listPageSize: 2 });
      const keys = ['a', 'b', 'c', 'd', 'e'].map((k) => `results/paged/${k}.parquet`);
      await Promise.all(keys.map((key) => paged.put(key, 'p')));

      const listed = [];
      for await (const info of paged.list('results/paged/')) listed.push(info.key);

      expect(listed).toEqual(keys);
    });
  });

  describe('SqsWorkQueue', () => {
    let queue: SqsWorkQueue;
    let workQueueUrl: string;
    let finalizeQueueUrl: string;

    const receiveAll = async (queueUrl: string, expected: number): Promise<Message[]> => {
      const received: Message[] = [];
      for (let i = 0; i < 20 && received.length < expected; i++) {
        const out = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
        );
        received.push(...(out.Messages ?? []));
      }
      return received;
    };

    beforeAll(async () => {
      workQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'sluice-work' }))).QueueUrl!;
      finalizeQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'sluice-finalize' }))).QueueUrl!;
      queue = new SqsWorkQueue({ client: sqs, workQueueUrl, finalizeQueueUrl });
    });

    it('delivers every unit descriptor, intact, as one message each', async () => {
      const runId = aRunId();
      const units: WorkUnit[] = Array.from({ length: 23 }, (_, i) =>
        aUnit(runId, i, i === 4 ? { format: 'csv', csvHeader: 'id,text', firstLine: 2 } : {}),
      );

      await queue.sendUnits(units);

      const received = await receiveAll(workQueueUrl, 23);
      const bodies = received.map((m) => JSON.parse(m.Body!) as WorkUnit);
      expect(bodies.sort((a, b) => a.unitId.localeCompare(b.unitId))).toEqual(units);
    });

    it('sends a finalize request to the finalize queue only', async () => {
      await queue.requestFinalize('r-20260301T100000Z-00abcd');

      const received = await receiveAll(finalizeQueueUrl, 1);
      expect(received.map((m) => JSON.parse(m.Body!))).toEqual([
        { kind: 'finalize', runId: 'r-20260301T100000Z-00abcd' },
      ]);
      expect(await receiveAll(workQueueUrl, 1)).toEqual([]);
    });
  });
});
