import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  groupOldFiles,
  type OldDocRecord,
  readOldDocs,
} from '../../shared/adapters/local/chunk-index/old-files.ts';

describe('old chunk index files', () => {
  it('groups the old files by pipeline, data logs with their generation, and leaves other names out', () => {
    const groups = groupOldFiles([
      'faq.1.jsonl',
      'docs.manifest',
      'notes.txt',
      'docs.2.jsonl',
      'docs.jsonl',
      'docs.keys',
    ]);
    expect(Object.fromEntries(groups)).toEqual({
      docs: {
        logs: [
          { name: 'docs.2.jsonl', generation: 2 },
          { name: 'docs.jsonl', generation: 0 },
        ],
        others: ['docs.keys', 'docs.manifest'],
      },
      faq: { logs: [{ name: 'faq.1.jsonl', generation: 1 }], others: [] },
    });
  });

  it('reads the document records of a data log in order, across its 1 MiB blocks, and skips everything else', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-old-log-'));
    try {
      // 2,000 chunk records of 384 floats (about 2 KiB each) put lines across block edges.
      const vector = Buffer.alloc(384 * 4, 3).toString('base64');
      const lines: string[] = [];
      const want: OldDocRecord[] = [];
      for (let i = 0; i < 2000; i += 1) {
        lines.push(JSON.stringify({ c: `doc${i}#0`, h: `sha${i}`, v: vector, r: 'r1' }));
        const doc =
          i % 3 === 0 ? { d: `doc${i}`, n: 1, s: `incoming/docs/${i}.jsonl` } : { d: `doc${i}`, n: 1 };
        lines.push(JSON.stringify(doc));
        want.push(doc);
      }
      // A chunk record in another key order, a line that is no record, one with no string id, a torn last line.
      lines.push(
        JSON.stringify({ h: 'x', c: 'late#0', v: vector, r: 'r2' }),
        'not json',
        '[1]',
        '{"d":5,"n":1}',
      );
      const file = path.join(dir, 'docs.jsonl');
      await writeFile(file, `${lines.join('\n')}\n{"d":"torn","n":`);

      const read: OldDocRecord[] = [];
      await readOldDocs(file, async (record) => {
        await Promise.resolve();
        read.push(record);
      });
      expect(read).toEqual(want);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
