import { open, rename, unlink } from 'node:fs/promises';
import type { ObjectWrite } from '../../ports/object-store.ts';

/**
 * Writes `file` piece by piece into a temporary file beside it, renamed over it by
 * `finish`, so a reader never sees half an object (as with an S3 multipart upload, which
 * is invisible until completed). `.tmp` files are not listed as objects.
 */
export async function openFsObjectWrite(file: string): Promise<ObjectWrite> {
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const handle = await open(temp, 'w');
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return {
    async write(bytes) {
      if (closed) throw new Error(`${file}: write after finish or abort`);
      let written = 0;
      while (written < bytes.byteLength)
        written += (await handle.write(bytes, written, bytes.byteLength - written)).bytesWritten;
    },
    async finish() {
      await close();
      await rename(temp, file);
    },
    async abort() {
      await close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    },
  };
}
