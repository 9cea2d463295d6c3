import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { InputError } from '../../shared/errors/errors.ts';

/** Keys that would name a file outside the store's root, or no file at all. */
const ESCAPING_KEYS = [
  '../outside.txt',
  'incoming/../../outside.txt',
  'incoming/docs/../../../outside.txt',
  '..',
  './incoming/a.jsonl',
  'incoming/./a.jsonl',
  '/etc/passwd',
  '/tmp/outside.txt',
  '..\\outside.txt',
  'incoming\\..\\..\\outside.txt',
  'C:\\Windows\\win.ini',
  'incoming//a.jsonl',
  '',
  'incoming/a\u0000.jsonl',
];

describe('FsObjectStore keys', () => {
  let parent: string;
  let root: string;
  let store: FsObjectStore;

  beforeAll(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'sluice-keys-'));
    root = path.join(parent, 'bucket');
    await mkdir(root);
    store = new FsObjectStore(root);
  });
  afterAll(() => rm(parent, { recursive: true, force: true }));

  it.each(ESCAPING_KEYS)('refuses %j for every operation, writing nothing', async (key) => {
    expect(() => store.pathOf(key)).toThrow(InputError);
    await expect(store.put(key, 'x')).rejects.toThrow(/invalid object key/);
    await expect(store.get(key)).rejects.toThrow(/invalid object key/);
    await expect(store.head(key)).rejects.toThrow(/invalid object key/);
    await expect(
      (async () => {
        for await (const _ of store.readRange(key, 0)) break;
      })(),
    ).rejects.toThrow(/invalid object key/);
    expect((await readdir(parent)).sort()).toEqual(['bucket']);
  });

  it('refuses a listing prefix that climbs out of the root', async () => {
    await expect(
      (async () => {
        for await (const _ of store.list('../')) break;
      })(),
    ).rejects.toThrow(/invalid object key/);
  });

  it('keeps unusual but safe keys inside the root, exactly as named', async () => {
    const keys = [
      'incoming/docs/q3 report + 100% café 東京.jsonl',
      'incoming/docs/..hidden..',
      'incoming/docs/a%2F..%2Fb',
    ];
    for (const key of keys) {
      await store.put(key, key);
      expect(new TextDecoder().decode(await store.get(key))).toBe(key);
      expect(path.relative(root, store.pathOf(key)).startsWith(`..${path.sep}`)).toBe(false);
    }
    const listed: string[] = [];
    for await (const { key } of store.list('incoming/docs/')) listed.push(key);
    expect(listed.sort()).toEqual([...keys].sort());
  });

  it('never resolves an accepted key outside the root, whatever its segments', () => {
    const segment = fc.oneof(
      fc.constantFrom('..', '.', '', '...', 'a', 'b c', '%2e%2e', '\\', '..\\..', 'é'),
      fc.string({ maxLength: 6 }),
    );
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.boolean(), (segments, absolute) => {
        const key = `${absolute ? '/' : ''}${segments.join('/')}`;
        let resolved: string;
        try {
          resolved = store.pathOf(key);
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
          return;
        }
        const relative = path.relative(root, resolved);
        const outside =
          relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
        expect(outside || relative === '', `${JSON.stringify(key)} -> ${resolved}`).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});

describe('LocalRunStore run ids', () => {
  it('refuses a run id that would name a file outside its folder', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-runids-'));
    const runs = new LocalRunStore(path.join(dir, 'runs'));
    for (const runId of ['../escape', 'r-1/../../x', '/etc/passwd', 'r-1\\..\\x', '']) {
      await expect(runs.getRun(runId)).rejects.toThrow(/invalid run id/);
    }
    await rm(dir, { recursive: true, force: true });
  });
});
