import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { chunkIndexContract } from '../contract/chunk-index-contract.ts';

chunkIndexContract('LocalChunkIndex', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-index-'));
  return { index: new LocalChunkIndex(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('LocalChunkIndex on disk', () => {
  it('is read back by a new process', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-index-'));
    await new LocalChunkIndex(dir).record(
      'docs',
      [{ chunkId: 'a#0', textSha256: 'h', embedding: Float32Array.of(0.25, -1), runId: 'r1' }],
      [{ docId: 'a', chunkCount: 1 }],
    );
    const again = new LocalChunkIndex(dir);
    expect(Array.from((await again.lookupChunks('docs', ['a#0'])).get('a#0')!.embedding)).toEqual([0.25, -1]);
    expect((await again.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(1);
    await rm(dir, { recursive: true, force: true });
  });
});
