import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { InputError } from '../../errors/errors.ts';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';
import { httpStatusOf, isAwsError } from './aws-error.ts';

export interface S3ObjectStoreOptions {
  /** Created once per process (module scope in a handler) and injected, so tests can swap it. */
  readonly client: S3Client;
  readonly bucket: string;
  /**
   * Keys per ListObjectsV2 page.
   * @default 1000 (the S3 maximum)
   */
  readonly listPageSize?: number;
}

/** (secondary adapter) ObjectStore over one S3 bucket. Keys are used as given. */
export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly listPageSize: number | undefined;

  constructor(options: S3ObjectStoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.listPageSize = options.listPageSize;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: out.ContentLength ?? 0 };
    } catch (error) {
      // HEAD responses have no body, so S3 can only say 404 (the SDK names it NotFound).
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Streams `[start, end)` chunk by chunk as S3 delivers it, never buffering the range.
   * A range that starts at or past the end of the object (including any range of an empty
   * object) yields nothing: S3 answers such a request with 416 InvalidRange.
   */
  async *readRange(key: string, start: number, end?: number): AsyncIterable<Uint8Array> {
    if (end !== undefined && end <= start) return;
    const range = end === undefined ? `bytes=${start}-` : `bytes=${start}-${end - 1}`;
    let body: unknown;
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }),
      );
      body = out.Body;
    } catch (error) {
      if (isAwsError(error, 'InvalidRange') || httpStatusOf(error) === 416) return;
      if (isNotFound(error)) {
        throw new InputError(`s3://${this.bucket}/${key} does not exist`, { cause: error });
      }
      throw error;
    }
    if (body === undefined || body === null) return;
    // In Node the body is an http.IncomingMessage (a Readable); `for await` destroys it when
    // the consumer stops early, so an abandoned range does not leak the socket.
    for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
      yield typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
    }
  }

  async put(key: string, body: Uint8Array | string, contentType?: string): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        // Stated explicitly: for an empty body the SDK cannot tell the length and warns.
        ContentLength: typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength,
        ...(contentType === undefined ? {} : { ContentType: contentType }),
      }),
    );
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (out.Body === undefined) return new Uint8Array();
      return await out.Body.transformToByteArray();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const pages = paginateListObjectsV2(
      { client: this.client, ...(this.listPageSize === undefined ? {} : { pageSize: this.listPageSize }) },
      { Bucket: this.bucket, Prefix: prefix },
    );
    for await (const page of pages) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key, size: object.Size ?? 0 };
      }
    }
  }
}

/** A missing key; a missing bucket is a configuration error and must not read as "no object". */
function isNotFound(error: unknown): boolean {
  if (isAwsError(error, 'NoSuchBucket')) return false;
  return isAwsError(error, 'NoSuchKey', 'NotFound') || httpStatusOf(error) === 404;
}
