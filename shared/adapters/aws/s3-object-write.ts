import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { ObjectWrite } from '../../ports/object-store.ts';

/**
 * Bytes sent per part of a multipart upload. S3 takes parts of 5 MiB to 5 GiB (the last may
 * be smaller) and at most 10,000 of them: 80 GB at this size, far beyond a unit's part.
 */
export const MULTIPART_PART_BYTES = 8 * 1024 * 1024;

function concat(pieces: readonly Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.byteLength;
  }
  return out;
}

/**
 * Writes one object piece by piece: a plain `put` when the whole object stays under one
 * part (no multipart upload for small parts), else a multipart upload of
 * {@link MULTIPART_PART_BYTES} parts, invisible until completed. A failure or `abort`
 * aborts the upload, so no part is left billed (the bucket's lifecycle rule for incomplete
 * uploads catches a process that dies first).
 */
export function openS3ObjectWrite(options: {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly contentType?: string | undefined;
  /** Writes the whole object at once (the store's `put`). */
  readonly put: (body: Uint8Array) => Promise<void>;
}): ObjectWrite {
  const { client, bucket, key, contentType } = options;
  let pieces: Uint8Array[] = [];
  let pending = 0;
  let uploadId: string | undefined;
  const parts: { ETag: string; PartNumber: number }[] = [];

  const abortUpload = async (): Promise<void> => {
    const id = uploadId;
    uploadId = undefined;
    if (id !== undefined)
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }));
  };
  const sendPart = async (): Promise<void> => {
    const body = concat(pieces, pending);
    pieces = [];
    pending = 0;
    if (uploadId === undefined) {
      const created = await client.send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          ...(contentType === undefined ? {} : { ContentType: contentType }),
        }),
      );
      if (!created.UploadId)
        throw new Error(`s3://${bucket}/${key}: CreateMultipartUpload returned no UploadId`);
      uploadId = created.UploadId;
    }
    const PartNumber = parts.length + 1;
    const out = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber,
        Body: body,
        ContentLength: body.byteLength,
      }),
    );
    if (!out.ETag) throw new Error(`s3://${bucket}/${key}: UploadPart ${PartNumber} returned no ETag`);
    parts.push({ ETag: out.ETag, PartNumber });
  };
  const failing = async <T>(step: () => Promise<T>): Promise<T> => {
    try {
      return await step();
    } catch (error) {
      await abortUpload().catch(() => undefined);
      throw error;
    }
  };

  return {
    write: (bytes) =>
      failing(async () => {
        pieces.push(bytes);
        pending += bytes.byteLength;
        if (pending >= MULTIPART_PART_BYTES) await sendPart();
      }),
    finish: () =>
      failing(async () => {
        if (uploadId === undefined) {
          const body = concat(pieces, pending);
          pieces = [];
          pending = 0;
          await options.put(body);
          return;
        }
        if (pending > 0) await sendPart();
        await client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        );
        uploadId = undefined;
      }),
    abort: async () => {
      pieces = [];
      pending = 0;
      // Best effort, like the abort after a failed step: the caller is already handling a
      // failure it must not lose, and the bucket's lifecycle rule removes what is left.
      await abortUpload().catch(() => undefined);
    },
  };
}
