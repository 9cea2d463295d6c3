import { mkdir, mkdtemp, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

/**
 * How `sluice run` stages folders into the local bucket, and which staged files a later
 * run deletes (an incremental pipeline counts their documents removed: they leave
 * `embeddings_current`). A wrong deletion is silent data loss, so each case checks both
 * the bucket and the current view.
 */

interface Summary {
  runId: string;
  counts: { records: number; removedDocuments?: number; embedded: number };
  sources?: { compared: number; deleted: number; skipped: number };
}

const docsOf = (prefix: string, n = 2) =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, text: `${prefix} document ${i} text.` }));

describe('staging folders for a local run', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-stage-review-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** A fresh home for one case. */
  const homeFor = (name: string) => path.join(work, 'homes', name);
  const run = async (home: string, ...paths: string[]): Promise<Summary> => {
    const result = await sluice(
      'run',
      ...paths,
      '--pipeline',
      'docs',
      '--home',
      home,
      '--threads',
      '0',
      '--json',
    );
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<Summary>();
  };
  const runLines = async (home: string, ...paths: string[]) =>
    sluice('run', ...paths, '--pipeline', 'docs', '--home', home, '--threads', '0', '--json');
  /** The documents of the corpus as it is now. */
  const current = async (home: string): Promise<string[]> => {
    const result = await sluice(
      'query',
      'select distinct doc_id from embeddings_current order by 1',
      '--home',
      home,
      '--json',
    );
    expect(result.code, result.err.join('\n')).toBe(0);
    return (result.json() as { doc_id: string }[]).map((r) => r.doc_id);
  };
  /** Every file of the local bucket under incoming/docs/, as keys relative to it. */
  const staged = async (home: string): Promise<string[]> => {
    const root = path.join(home, 'bucket', 'incoming', 'docs');
    const entries = await readdir(root, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
      .sort();
  };
  const folderWith = async (dir: string, files: Record<string, string>) => {
    await mkdir(dir, { recursive: true });
    for (const [name, prefix] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), jsonl(docsOf(prefix)));
    }
  };

  it('keeps two folders of the same name apart, run one after the other', async () => {
    const home = homeFor('same-name');
    const x = path.join(work, 'x', 'data');
    const y = path.join(work, 'y', 'data');
    await folderWith(x, { 'a.jsonl': 'xa', 'b.jsonl': 'xb' });
    await folderWith(y, { 'c.jsonl': 'yc' });

    const first = await run(home, x);
    expect(first.counts.removedDocuments).toBe(0);
    const secondLines = await runLines(home, y);
    expect(secondLines.code, secondLines.err.join('\n')).toBe(0);
    const second = secondLines.json<Summary>();
    // y is another folder: x's files are not its files gone.
    expect(second.counts.removedDocuments).toBe(0);
    expect(second.sources).toMatchObject({ deleted: 0 });
    expect(await current(home)).toEqual(['xa-0', 'xa-1', 'xb-0', 'xb-1', 'yc-0', 'yc-1']);
    // x keeps the plain name; y is staged beside it, under its name and a hash of its path.
    const keys = await staged(home);
    expect(keys).toEqual([
      expect.stringMatching(/^data-[0-9a-f]{8}\/c\.jsonl$/),
      'data/a.jsonl',
      'data/b.jsonl',
    ]);
    const yPrefix = `incoming/docs/${keys[0]!.split('/')[0]}/`;
    expect(secondLines.err).toContain(
      `folder ${y} is staged under ${yPrefix}: incoming/docs/data/ is another folder's`,
    );

    // The same folder again, a file gone: that file's documents are removed, y's stay.
    await rm(path.join(x, 'b.jsonl'));
    const third = await run(home, x);
    expect(third.counts.removedDocuments).toBe(2);
    expect(third.sources).toMatchObject({ deleted: 1 });
    expect(await current(home)).toEqual(['xa-0', 'xa-1', 'yc-0', 'yc-1']);
    // And y again, unchanged: nothing of x's is deleted.
    const fourth = await run(home, y);
    expect(fourth.counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
    expect(await current(home)).toEqual(['xa-0', 'xa-1', 'yc-0', 'yc-1']);
  });

  it('keeps two folders of the same name apart in one run, even with files of the same name', async () => {
    const home = homeFor('same-name-one-run');
    const x = path.join(work, 'one-run', 'x', 'data');
    const y = path.join(work, 'one-run', 'y', 'data');
    await folderWith(x, { 'a.jsonl': 'ox' });
    await folderWith(y, { 'a.jsonl': 'oy' });
    const both = await run(home, x, y);
    expect(both.counts.records).toBe(4);
    // Each alone later deletes nothing of the other's.
    expect((await run(home, x)).counts.removedDocuments).toBe(0);
    expect((await run(home, y)).counts.removedDocuments).toBe(0);
    expect(await current(home)).toEqual(['ox-0', 'ox-1', 'oy-0', 'oy-1']);
  });

  it('stages the same folder under one prefix however it is named: relative, trailing slash, symlink', async () => {
    const home = homeFor('aliases');
    const folder = path.join(work, 'aliases', 'corpus');
    await folderWith(folder, { 'a.jsonl': 'al', 'b.jsonl': 'bl', 'c.jsonl': 'cl' });
    const link = path.join(work, 'aliases', 'link-to-corpus');
    await symlink(folder, link);

    await run(home, folder);
    const keys = await staged(home);
    expect(keys).toEqual(['corpus/a.jsonl', 'corpus/b.jsonl', 'corpus/c.jsonl']);
    for (const alias of [path.relative(process.cwd(), folder), `${folder}/`, link, `${link}/`]) {
      const again = await run(home, alias);
      expect(again.counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
      expect(await staged(home)).toEqual(keys);
    }
    // A file deleted, the folder given through the link: its documents count as removed.
    await rm(path.join(folder, 'b.jsonl'));
    const viaLink = await run(home, link);
    expect(viaLink.counts.removedDocuments).toBe(2);
    expect(await staged(home)).toEqual(['corpus/a.jsonl', 'corpus/c.jsonl']);
    expect(await current(home)).toEqual(['al-0', 'al-1', 'cl-0', 'cl-1']);
  });

  it('does not delete the folder’s other files when one of its files is given alone', async () => {
    const home = homeFor('file-in-folder');
    const folder = path.join(work, 'file-in-folder', 'data');
    await folderWith(folder, { 'a.jsonl': 'fa', 'b.jsonl': 'fb' });
    await run(home, folder);
    const single = await run(home, path.join(folder, 'a.jsonl'));
    expect(single.counts.removedDocuments).toBe(0);
    expect(await staged(home)).toEqual(['a.jsonl', 'data/a.jsonl', 'data/b.jsonl']);
    expect(await current(home)).toEqual(['fa-0', 'fa-1', 'fb-0', 'fb-1']);
  });

  it('keeps a moved folder’s prefix: its old path is gone, so it is the same folder', async () => {
    const home = homeFor('moved');
    const before = path.join(work, 'moved', 'old', 'data');
    const after = path.join(work, 'moved', 'new', 'data');
    await folderWith(before, { 'a.jsonl': 'ma', 'b.jsonl': 'mb' });
    await run(home, before);
    await mkdir(path.dirname(after), { recursive: true });
    await rename(before, after);
    await rm(path.join(after, 'b.jsonl'));
    const moved = await run(home, after);
    expect(moved.counts.removedDocuments).toBe(2);
    expect(await staged(home)).toEqual(['data/a.jsonl']);
    expect(await current(home)).toEqual(['ma-0', 'ma-1']);
  });

  it('keeps a home staged by an earlier version: its folders keep their prefix and their deletions count', async () => {
    const home = homeFor('upgraded');
    const folder = path.join(work, 'upgraded', 'data');
    await folderWith(folder, { 'a.jsonl': 'ua', 'b.jsonl': 'ub' });
    await run(home, folder);
    // An earlier version kept no record of which folder a prefix is: drop whatever this one kept.
    await rm(path.join(home, 'state', 'staged-folders'), { recursive: true, force: true });
    const unchanged = await run(home, folder);
    expect(unchanged.counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
    expect(await staged(home)).toEqual(['data/a.jsonl', 'data/b.jsonl']);
    await rm(path.join(folder, 'b.jsonl'));
    expect((await run(home, folder)).counts.removedDocuments).toBe(2);
    expect(await current(home)).toEqual(['ua-0', 'ua-1']);
  });

  it('stages a file replaced by a folder of the same name, and back', async () => {
    const home = homeFor('file-to-folder');
    const folder = path.join(work, 'file-to-folder', 'data');
    await folderWith(folder, { 'a.jsonl': 'ta', 'part.jsonl': 'tp' });
    await run(home, folder);
    // `part.jsonl` (a file) becomes a folder holding part.jsonl/x.jsonl.
    await rm(path.join(folder, 'part.jsonl'));
    await folderWith(folder, { 'part.jsonl/x.jsonl': 'tx' });
    const toFolder = await runLines(home, folder);
    expect(toFolder.code, toFolder.err.join('\n')).toBe(0);
    expect(toFolder.json<Summary>().counts.removedDocuments).toBe(2);
    expect(await staged(home)).toEqual(['data/a.jsonl', 'data/part.jsonl/x.jsonl']);
    // And back: part.jsonl/ (a folder) becomes a file again.
    await rm(path.join(folder, 'part.jsonl'), { recursive: true });
    await folderWith(folder, { 'part.jsonl': 'tq' });
    const toFile = await runLines(home, folder);
    expect(toFile.code, toFile.err.join('\n')).toBe(0);
    expect(toFile.json<Summary>().counts.removedDocuments).toBe(2);
    expect(await staged(home)).toEqual(['data/a.jsonl', 'data/part.jsonl']);
    expect(await current(home)).toEqual(['ta-0', 'ta-1', 'tq-0', 'tq-1']);
  });

  it('mirrors files with odd names: spaces, #, %, ?, unicode, a newline, a case-only rename', async () => {
    const home = homeFor('odd-names');
    const folder = path.join(work, 'odd-names', 'data');
    const names = {
      'with space.jsonl': 'sp',
      'hash#1.jsonl': 'ha',
      'pct%20.jsonl': 'pc',
      'q?.jsonl': 'qm',
      'café.jsonl': 'ca',
      'new\nline.jsonl': 'nl',
      'Upper.jsonl': 'up',
    };
    await folderWith(folder, names);
    const first = await run(home, folder);
    expect(first.counts.records).toBe(14);
    expect(await staged(home)).toEqual(
      Object.keys(names)
        .map((n) => `data/${n}`)
        .sort(),
    );
    // Unchanged: nothing deleted, nothing embedded.
    expect((await run(home, folder)).counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
    // A case-only rename moves its documents: not removed.
    await rename(path.join(folder, 'Upper.jsonl'), path.join(folder, 'upper.jsonl'));
    await rm(path.join(folder, 'new\nline.jsonl'));
    const renamed = await run(home, folder);
    expect(renamed.counts.removedDocuments).toBe(2);
    expect(renamed.sources).toMatchObject({ deleted: 2 });
    expect(await current(home)).toEqual(
      ['ca', 'ha', 'pc', 'qm', 'sp', 'up'].flatMap((p) => [`${p}-0`, `${p}-1`]).sort(),
    );
  });

  it('stages a folder named as a staged single file apart, and refuses a single file named as a staged folder', async () => {
    const home = homeFor('file-vs-folder');
    const file = path.join(work, 'file-vs-folder', 'one', 'data.jsonl');
    const folder = path.join(work, 'file-vs-folder', 'two', 'data.jsonl');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, jsonl(docsOf('fv')));
    await folderWith(folder, { 'a.jsonl': 'fw' });
    await run(home, file);
    const result = await runLines(home, folder);
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(await staged(home)).toEqual([
      'data.jsonl',
      expect.stringMatching(/^data\.jsonl-[0-9a-f]{8}\/a\.jsonl$/),
    ]);
    expect(await current(home)).toEqual(['fv-0', 'fv-1', 'fw-0', 'fw-1']);

    // The other way round: a folder staged first, then a single file of its name.
    const home2 = homeFor('folder-vs-file');
    await run(home2, folder);
    const refused = await runLines(home2, file);
    expect(refused.code).toBe(2);
    expect(refused.err).toEqual([
      `sluice run: input file ${file} would be stored as incoming/docs/data.jsonl, where a folder is staged; rename it`,
    ]);
  });

  it('names a deleted file again when the run that deleted it stopped before recording it', async () => {
    const home = homeFor('stopped');
    const folder = path.join(work, 'stopped', 'data');
    await folderWith(folder, { 'a.jsonl': 'sa', 'b.jsonl': 'sb' });
    await run(home, folder);
    // b is deleted and c added; staging c fails (as out of disk would) after b left the bucket.
    await rm(path.join(folder, 'b.jsonl'));
    await folderWith(folder, { 'c.jsonl': 'sc' });
    const blocker = path.join(home, 'bucket', 'incoming', 'docs', 'data', 'c.jsonl');
    await mkdir(blocker, { recursive: true });
    await writeFile(path.join(blocker, 'leftover.tmp'), 'an interrupted write');
    const stopped = await runLines(home, folder);
    expect(stopped.code).toBe(1);
    expect(await staged(home)).not.toContain('data/b.jsonl');
    await rm(blocker, { recursive: true });

    const next = await run(home, folder);
    expect(next.counts.removedDocuments).toBe(2);
    expect(next.sources).toMatchObject({ deleted: 1 });
    expect(await current(home)).toEqual(['sa-0', 'sa-1', 'sc-0', 'sc-1']);
    // Recorded once, not named again.
    const after = await run(home, folder);
    expect(after.counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
    expect(after.sources).toMatchObject({ deleted: 0 });
  });

  it('removes nothing more when a recorded deletion is named a second time', async () => {
    const home = homeFor('twice');
    const folder = path.join(work, 'twice', 'data');
    await folderWith(folder, { 'a.jsonl': 'wa', 'b.jsonl': 'wb' });
    await run(home, folder);
    await rm(path.join(folder, 'b.jsonl'));
    expect((await run(home, folder)).counts.removedDocuments).toBe(2);
    // As if the run that recorded it had stopped before clearing the list.
    const pending = path.join(home, 'state', 'staged-folders', 'docs', 'pending-deletions.json');
    await writeFile(pending, JSON.stringify({ keys: ['incoming/docs/data/b.jsonl'] }));
    const again = await run(home, folder);
    expect(again.counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
    expect(await current(home)).toEqual(['wa-0', 'wa-1']);
    await expect(stat(pending)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
