import { describe, expect, it } from 'vitest';
import { groupOldFiles } from '../../shared/adapters/local/chunk-index/old-files.ts';

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
});
