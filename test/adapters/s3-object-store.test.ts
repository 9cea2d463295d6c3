import 'aws-sdk-client-mock-vitest/extend';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { InputError, ObjectChanged, ObjectRangeError } from '../../shared/errors/errors.ts';
import { streamingBody } from '../support/sdk-bodies.ts';
import { drain } from '../support/streams.ts';

const s3 = mockClient(S3Client);
const store = new S3ObjectStore({ client: new S3Client({ region: 'us-east-1' }), bucket: 'sluice-data' });

const notFound = () => new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } });
const noSuchKey = () =>
  new NoSuchKey({ message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
const serviceError = (name: string, httpStatusCode: number) =>
  new S3ServiceException({ name, $fault: 'client', message: name, $metadata: { httpStatusCode } });

describe('S3ObjectStore', () => {
  afterEach(() => {
    s3.reset();
  });

  describe('head', () => {
    it('returns the size of an object', async () => {
      s3.on(HeadObjectCommand).resolves({ ContentLength: 1234 });

      expect(await store.head('incoming/docs/a.jsonl')).toEqual({ key: 'incoming/docs/a.jsonl', size: 1234 });
      expect(s3).toHaveReceivedCommandWith(HeadObjectCommand, {
        Bucket: 'sluice-data',
        Key: 'incoming/docs/a.jsonl',
      });
    });

    it('returns undefined when the object does not exist', async () => {
      s3.on(HeadObjectCommand).rejects(notFound());

      expect(await store.head('incoming/docs/missing.jsonl')).toBeUndefined();
    });

    it('lets other failures through', async () => {
      s3.on(HeadObjectCommand).rejects(serviceError('AccessDenied', 403));

      await expect(store.head('incoming/docs/a.jsonl')).rejects.toMatchObject({ name: 'AccessDenied' });
    });
  });

  describe('readRange', () => {
    it('asks for the inclusive byte range S3 expects and streams the body chunk by chunk', async () => {
      s3.on(GetObjectCommand).resolves({ Body: streamingBody('{"id":1}\n', '{"id":2}\n') as never });

      const { chunks, text } = await drain(store.readRange('incoming/docs/a.jsonl', 100, 118));

      expect(s3).toHaveReceivedCommandWith(GetObjectCommand, {
        Bucket: 'sluice-data',
        Key: 'incoming/docs/a.jsonl',
        Range: 'bytes=100-117',
      });
      expect(chunks).toHaveLength(2);
      expect(chunks.every((c) => c instanceof Uint8Array)).toBe(true);
      expect(text).toBe('{"id":1}\n{"id":2}\n');
    });

    it('reads to the end of the object when no end is given', async () => {
      s3.on(GetObjectCommand).resolves({ Body: streamingBody('tail') as never });

      expect((await drain(store.readRange('k', 4096))).text).toBe('tail');
      expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Range: 'bytes=4096-' });
    });

    it('yields nothing for an empty range without calling S3', async () => {
      expect((await drain(store.readRange('k', 10, 10))).chunks).toEqual([]);
      expect(s3).not.toHaveReceivedCommand(GetObjectCommand);
    });

    it('yields nothing when the range starts at or past the end of the object (416 InvalidRange)', async () => {
      s3.on(GetObjectCommand).rejects(serviceError('InvalidRange', 416));

      expect((await drain(store.readRange('empty.jsonl', 0))).chunks).toEqual([]);
    });

    it('refuses a range that starts past the end of a non-empty object (416) instead of reading it empty', async () => {
      s3.on(GetObjectCommand).rejects(serviceError('InvalidRange', 416));

      await expect(drain(store.readRange('incoming/docs/a.jsonl', 4096))).rejects.toBeInstanceOf(
        ObjectRangeError,
      );
      await expect(drain(store.readRange('incoming/docs/a.jsonl', 0, 10))).rejects.toThrow(
        's3://sluice-data/incoming/docs/a.jsonl: bytes [0, 10) start past the end of the object',
      );
    });

    it('refuses a body shorter than the range asked for (an end past the object)', async () => {
      s3.on(GetObjectCommand).resolves({ Body: streamingBody('abc') as never, ContentLength: 3 });

      await expect(drain(store.readRange('k', 100, 118))).rejects.toThrow('reach past the end of the object');
    });

    it('reads a pinned VersionId, so an overwrite since planning does not change what the unit reads', async () => {
      s3.on(HeadObjectCommand).resolves({ ContentLength: 9, VersionId: 'v3L.abc', ETag: '"e1"' });
      s3.on(GetObjectCommand).resolves({ Body: streamingBody('{"id":1}\n') as never, ContentLength: 9 });

      const head = await store.head('incoming/docs/a.jsonl');
      await drain(store.readRange('incoming/docs/a.jsonl', 0, 9, { version: head!.version! }));

      expect(head).toEqual({ key: 'incoming/docs/a.jsonl', size: 9, version: 'v:v3L.abc', etag: '"e1"' });
      expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { VersionId: 'v3L.abc', Range: 'bytes=0-8' });
    });

    it('pins the ETag with If-Match on an unversioned bucket, and reports a failed precondition as a changed object', async () => {
      s3.on(HeadObjectCommand).resolves({ ContentLength: 9, ETag: '"e1"' });
      s3.on(GetObjectCommand).rejects(serviceError('PreconditionFailed', 412));

      const head = await store.head('incoming/docs/a.jsonl');
      const reading = drain(store.readRange('incoming/docs/a.jsonl', 0, 9, { version: head!.version! }));

      expect(head?.version).toBe('e:"e1"');
      await expect(reading).rejects.toBeInstanceOf(ObjectChanged);
      await expect(reading).rejects.toThrow('changed since the run was planned');
      expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { IfMatch: '"e1"' });
    });

    it('reports a pinned version deleted since as a changed object', async () => {
      s3.on(GetObjectCommand).rejects(serviceError('NoSuchVersion', 404));

      await expect(drain(store.readRange('k', 0, 9, { version: 'v:gone' }))).rejects.toThrow(
        's3://sluice-data/k was deleted since the run was planned',
      );
    });

    it('reports a missing object as an input error naming it', async () => {
      s3.on(GetObjectCommand).rejects(noSuchKey());

      const reading = drain(store.readRange('incoming/docs/gone.jsonl', 0, 10));

      await expect(reading).rejects.toBeInstanceOf(InputError);
      await expect(reading).rejects.toThrow('s3://sluice-data/incoming/docs/gone.jsonl does not exist');
    });
  });

  describe('put and get', () => {
    it('writes a whole object with its content type', async () => {
      s3.on(PutObjectCommand).resolves({});

      await store.put('runs/docs/r-1/summary.json', '{"ok":true}', 'application/json');

      expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
        Bucket: 'sluice-data',
        Key: 'runs/docs/r-1/summary.json',
        Body: '{"ok":true}',
        ContentLength: 11,
        ContentType: 'application/json',
      });
    });

    it('reads a whole object as bytes', async () => {
      s3.on(GetObjectCommand).resolves({ Body: streamingBody('{"ok":', 'true}') as never });

      const bytes = await store.get('runs/docs/r-1/summary.json');

      expect(Buffer.from(bytes!).toString()).toBe('{"ok":true}');
      expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Key: 'runs/docs/r-1/summary.json' });
      expect(s3.commandCalls(GetObjectCommand)[0]!.args[0].input.Range).toBeUndefined();
    });

    it('returns undefined for a missing key', async () => {
      s3.on(GetObjectCommand).rejects(noSuchKey());

      expect(await store.get('runs/docs/r-1/summary.json')).toBeUndefined();
    });

    it('does not mistake a missing bucket for a missing key', async () => {
      s3.on(GetObjectCommand).rejects(serviceError('NoSuchBucket', 404));

      await expect(store.get('k')).rejects.toMatchObject({ name: 'NoSuchBucket' });
    });
  });

  describe('list', () => {
    it('follows continuation tokens across pages, in key order', async () => {
      s3.on(ListObjectsV2Command)
        .resolvesOnce({
          Contents: [
            { Key: 'incoming/docs/a.jsonl', Size: 10 },
            { Key: 'incoming/docs/b.jsonl', Size: 20 },
          ],
          IsTruncated: true,
          NextContinuationToken: 'page-2',
        })
        .resolvesOnce({ Contents: [{ Key: 'incoming/docs/c.jsonl', Size: 30 }], IsTruncated: false });

      const listed = [];
      for await (const info of store.list('incoming/docs/')) listed.push(info);

      expect(listed).toEqual([
        { key: 'incoming/docs/a.jsonl', size: 10 },
        { key: 'incoming/docs/b.jsonl', size: 20 },
        { key: 'incoming/docs/c.jsonl', size: 30 },
      ]);
      expect(s3).toHaveReceivedCommandTimes(ListObjectsV2Command, 2);
      expect(s3).toHaveReceivedNthCommandWith(ListObjectsV2Command, 1, {
        Bucket: 'sluice-data',
        Prefix: 'incoming/docs/',
      });
      expect(s3).toHaveReceivedNthCommandWith(ListObjectsV2Command, 2, { ContinuationToken: 'page-2' });
    });

    it('yields nothing for an empty prefix', async () => {
      s3.on(ListObjectsV2Command).resolves({ KeyCount: 0 });

      const listed = [];
      for await (const info of store.list('incoming/none/')) listed.push(info);
      expect(listed).toEqual([]);
    });
  });
});
