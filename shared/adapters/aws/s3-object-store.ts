import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { InputError, ObjectChanged, ObjectRangeError } from '../../errors/errors.ts';
import type { ObjectInfo, ObjectStore, ObjectWrite, ReadRangeOptions } from '../../ports/object-store.ts';
import { httpStatusOf, isAwsError } from './aws-error.ts';
import { openS3ObjectWrite } from './s3-object-write.ts';

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

  /**
   * Size and version: `v:<VersionId>` on a versioned bucket (the stack's bucket is), which
   * later reads fetch whatever was written since; else `e:<ETag>`, which later reads send
   * as `If-Match`, so an overwrite fails them (412) instead of reading other bytes.
   */
  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      const version =
        out.VersionId !== undefined && out.VersionId !== 'null'
          ? `v:${out.VersionId}`
          : out.ETag !== undefined
            ? `e:${out.ETag}`
            : undefined;
      return {
        key,
        size: out.ContentLength ?? 0,
        ...(version === undefined ? {} : { version }),
        ...(out.ETag === undefined ? {} : { etag: out.ETag }),
      };
    } catch (error) {
      // HEAD responses have no body, so S3 can only say 404 (the SDK names it NotFound).
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Streams `[start, end)` chunk by chunk as S3 delivers it, never buffering the range.
   * With a pinned `version` the read names it (`VersionId`, or `If-Match` on the ETag):
   * a version deleted since, or an object overwritten since, fails with `ObjectChanged`.
   * A range past the end of the object is an `ObjectRangeError`: S3 answers a start past
   * it with 416 and an end past it with fewer bytes, and both once read as a short or
   * empty body. Only `readRange(key, 0)` of an empty object (also a 416) yields nothing.
   */
  async *readRange(
    key: string,
    start: number,
    end?: number,
    options: ReadRangeOptions = {},
  ): AsyncIterable<Uint8Array> {
    if (end !== undefined && end <= start) return;
    const range = end === undefined ? `bytes=${start}-` : `bytes=${start}-${end - 1}`;
    const read: RangeRead = {
      key,
      where: `s3://${this.bucket}/${key}`,
      start,
      end,
      version: options.version,
    };
    const pin = pinOf(options.version);
    let out: { Body?: unknown; ContentLength?: number | undefined };
    try {
      out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range, ...pin }),
      );
    } catch (error) {
      const failure = rangeReadFailure(error, read, pin.IfMatch);
      if (failure === 'empty object') return;
      throw failure;
    }
    yield* checkedBody(out.Body, out.ContentLength, read);
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

  /** A multipart upload, or one `put` when the object stays under one part. */
  async openWrite(key: string, contentType?: string): Promise<ObjectWrite> {
    return openS3ObjectWrite({
      client: this.client,
      bucket: this.bucket,
      key,
      contentType,
      put: (body) => this.put(key, body, contentType),
    });
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
        // A listing carries each object's ETag: a version a unit can pin (If-Match) without a HEAD.
        yield {
          key: object.Key,
          size: object.Size ?? 0,
          ...(object.ETag === undefined ? {} : { version: `e:${object.ETag}` }),
        };
      }
    }
  }
}

/** The GetObject parameters that read exactly a pinned version (see {@link S3ObjectStore.head}). */
/** One `readRange` call, as its errors name it. */
interface RangeRead {
  readonly key: string;
  /** `s3://bucket/key` */
  readonly where: string;
  readonly start: number;
  readonly end: number | undefined;
  readonly version: string | undefined;
}

/**
 * What a failed GetObject of a range means: the pinned object changed or was deleted, the
 * range starts past the end (or the object is empty, for `readRange(key, 0)`), the key
 * does not exist; anything else is thrown as it came.
 */
function rangeReadFailure(error: unknown, read: RangeRead, ifMatch: string | undefined): unknown {
  const { key, where, start, end, version } = read;
  if (isAwsError(error, 'PreconditionFailed') || httpStatusOf(error) === 412)
    return new ObjectChanged(
      key,
      `${where} changed since the run was planned (ETag is no longer ${ifMatch})`,
      {
        cause: error,
      },
    );
  if (isAwsError(error, 'InvalidRange') || httpStatusOf(error) === 416) {
    if (start === 0 && end === undefined) return 'empty object';
    return new ObjectRangeError(
      `${where}: bytes [${start}, ${end ?? 'end'}) start past the end of the object`,
      {
        cause: error,
      },
    );
  }
  if (isAwsError(error, 'NoSuchVersion') || (version !== undefined && isNotFound(error)))
    return new ObjectChanged(key, `${where} was deleted since the run was planned (${version})`, {
      cause: error,
    });
  if (isNotFound(error)) return new InputError(`${where} does not exist`, { cause: error });
  return error;
}

/**
 * Yields a GetObject body chunk by chunk, failing when it is shorter than the range asked
 * for (S3 answers an end past the object with fewer bytes) or than its own length.
 */
async function* checkedBody(
  body: unknown,
  length: number | undefined,
  read: RangeRead,
): AsyncGenerator<Uint8Array> {
  const { where, start, end } = read;
  if (end !== undefined && length !== undefined && length < end - start) {
    // Drain nothing: destroying the body frees the socket.
    (body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new ObjectRangeError(
      `${where}: bytes [${start}, ${end}) reach past the end of the object (${length} bytes from ${start})`,
    );
  }
  if (body === undefined || body === null) return;
  // In Node the body is an http.IncomingMessage (a Readable); `for await` destroys it when
  // the consumer stops early, so an abandoned range does not leak the socket.
  let received = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
    received += bytes.byteLength;
    yield bytes;
  }
  if (length !== undefined && received < length)
    throw new ObjectRangeError(`${where}: the body ended after ${received} of ${length} bytes`);
}

function pinOf(version: string | undefined): { VersionId?: string; IfMatch?: string } {
  if (version === undefined) return {};
  if (version.startsWith('v:')) return { VersionId: version.slice(2) };
  if (version.startsWith('e:')) return { IfMatch: version.slice(2) };
  throw new InputError(`not an S3 object version: ${version}`);
}

/** A missing key; a missing bucket is a configuration error and must not read as "no object". */
function isNotFound(error: unknown): boolean {
  if (isAwsError(error, 'NoSuchBucket')) return false;
  return isAwsError(error, 'NoSuchKey', 'NotFound') || httpStatusOf(error) === 404;
}
