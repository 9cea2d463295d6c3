import 'aws-sdk-client-mock-vitest/extend';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { MULTIPART_PART_BYTES } from '../../shared/adapters/aws/s3-object-write.ts';

const s3 = mockClient(S3Client);
const store = () => new S3ObjectStore({ client: new S3Client({ region: 'eu-west-1' }), bucket: 'b' });
const piece = (bytes: number, fill: number) => new Uint8Array(bytes).fill(fill);

describe('S3ObjectStore.openWrite', () => {
  afterEach(() => s3.reset());

  it('puts a small object whole, with no multipart upload', async () => {
    s3.on(PutObjectCommand).resolves({});
    const write = await store().openWrite('results/x.parquet', 'application/vnd.apache.parquet');
    await write.write(piece(10, 1));
    await write.write(piece(5, 2));
    await write.finish();
    expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 1);
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, { Key: 'results/x.parquet', ContentLength: 15 });
    expect(s3).not.toHaveReceivedCommand(CreateMultipartUploadCommand);
  });

  it('uploads a large object in parts and completes it with their ETags in order', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
    s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({
      ETag: `"e${input.PartNumber}"`,
    }));
    s3.on(CompleteMultipartUploadCommand).resolves({});
    const write = await store().openWrite('results/x.parquet');
    for (let i = 0; i < 5; i += 1) await write.write(piece(MULTIPART_PART_BYTES / 2 + 1, i));
    await write.finish();
    // 5 pieces of just over half a part: parts after the 2nd and 4th piece, the rest at finish.
    expect(s3).toHaveReceivedCommandTimes(UploadPartCommand, 3);
    expect(s3.commandCalls(UploadPartCommand).map((c) => c.args[0].input.ContentLength)).toEqual([
      MULTIPART_PART_BYTES + 2,
      MULTIPART_PART_BYTES + 2,
      MULTIPART_PART_BYTES / 2 + 1,
    ]);
    expect(s3).toHaveReceivedCommandWith(CompleteMultipartUploadCommand, {
      UploadId: 'up-1',
      MultipartUpload: {
        Parts: [
          { ETag: '"e1"', PartNumber: 1 },
          { ETag: '"e2"', PartNumber: 2 },
          { ETag: '"e3"', PartNumber: 3 },
        ],
      },
    });
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('aborts the upload when a part fails', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-2' });
    s3.on(UploadPartCommand).rejects(new Error('socket hang up'));
    s3.on(AbortMultipartUploadCommand).resolves({});
    const write = await store().openWrite('results/x.parquet');
    await expect(write.write(piece(MULTIPART_PART_BYTES, 1))).rejects.toThrow('socket hang up');
    expect(s3).toHaveReceivedCommandWith(AbortMultipartUploadCommand, {
      UploadId: 'up-2',
      Key: 'results/x.parquet',
    });
  });

  it('aborts the upload of a writer that is abandoned, and completes nothing', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-3' });
    s3.on(UploadPartCommand).resolves({ ETag: '"e"' });
    s3.on(AbortMultipartUploadCommand).resolves({});
    const write = await store().openWrite('results/y.parquet');
    await write.write(piece(MULTIPART_PART_BYTES, 1));
    await write.abort();
    expect(s3).toHaveReceivedCommandWith(AbortMultipartUploadCommand, {
      UploadId: 'up-3',
      Key: 'results/y.parquet',
    });
    expect(s3).not.toHaveReceivedCommand(CompleteMultipartUploadCommand);
  });
});
