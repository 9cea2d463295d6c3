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

/** Where one object is written, and how a small one is put whole. */
export interface S3ObjectWriteOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly contentType?: string | undefined;
  /** Writes the whole object at once (the store's `put`). */
  readonly put: (body: Uint8Array) => Promise<void>;
}

/**
 * Writes one object piece by piece: a plain `put` when the whole object stays under one
 * part (no multipart upload for small parts), else a multipart upload of
 * {@link MULTIPART_PART_BYTES} parts, invisible until completed. A failure or `abort`
 * aborts the upload, so no part is left billed (the bucket's lifecycle rule for incomplete
 * uploads catches a process that dies first).
 */
export function openS3ObjectWrite(options: S3ObjectWriteOptions): ObjectWrite {
  const upload = new S3PieceUpload(options);
  return {
    write: (bytes) => upload.write(bytes),
    finish: () => upload.finish(),
    abort: () => upload.abort(),
  };
}

/** The state of one {@link openS3ObjectWrite}: bytes buffered toward the next part, the upload once begun. */
class S3PieceUpload {
  private pieces: Uint8Array[] = [];
  private pending = 0;
  private uploadId: string | undefined;
  private readonly parts: { ETag: string; PartNumber: number }[] = [];

  constructor(private readonly options: S3ObjectWriteOptions) {}

  write(bytes: Uint8Array): Promise<void> {
    return this.abortingOnFailure(async () => {
      this.pieces.push(bytes);
      this.pending += bytes.byteLength;
      if (this.pending >= MULTIPART_PART_BYTES) await this.sendPart();
    });
  }

  finish(): Promise<void> {
    return this.abortingOnFailure(async () => {
      if (this.uploadId === undefined) {
        await this.options.put(this.takeBuffered());
        return;
      }
      if (this.pending > 0) await this.sendPart();
      await this.complete(this.uploadId);
    });
  }

  async abort(): Promise<void> {
    this.pieces = [];
    this.pending = 0;
    // Best effort, like the abort after a failed step: the caller is already handling a
    // failure it must not lose, and the bucket's lifecycle rule removes what is left.
    await this.abortUpload().catch(() => undefined);
  }

  private takeBuffered(): Uint8Array {
    const body = concat(this.pieces, this.pending);
    this.pieces = [];
    this.pending = 0;
    return body;
  }

  private async abortingOnFailure<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (error) {
      await this.abortUpload().catch(() => undefined);
      throw error;
    }
  }

  private async abortUpload(): Promise<void> {
    const id = this.uploadId;
    this.uploadId = undefined;
    const { client, bucket, key } = this.options;
    if (id !== undefined)
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }));
  }

  private async sendPart(): Promise<void> {
    const body = this.takeBuffered();
    const uploadId = this.uploadId ?? (await this.createUpload());
    const { client, bucket, key } = this.options;
    const PartNumber = this.parts.length + 1;
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
    this.parts.push({ ETag: out.ETag, PartNumber });
  }

  private async createUpload(): Promise<string> {
    const { client, bucket, key, contentType } = this.options;
    const created = await client.send(
      new CreateMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        ...(contentType === undefined ? {} : { ContentType: contentType }),
      }),
    );
    if (!created.UploadId)
      throw new Error(`s3://${bucket}/${key}: CreateMultipartUpload returned no UploadId`);
    this.uploadId = created.UploadId;
    return created.UploadId;
  }

  private async complete(uploadId: string): Promise<void> {
    const { client, bucket, key } = this.options;
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: this.parts },
      }),
    );
    this.uploadId = undefined;
  }
}
