import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';
import { parquetFile, words } from './factories.ts';

describe('a skewed drop through sluice run', () => {
  let work: string;
  let home: string;
  let pipelines: string;
  const expectedIds = new Set<string>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-drop-'));
    home = path.join(work, 'home');
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    const docs = JSON.parse(await readFile('pipelines/docs.json', 'utf8')) as Record<string, unknown>;
    // Small units, so every kind of input is split.
    await writeFile(
      path.join(pipelines, 'docs.json'),
      JSON.stringify({
        ...docs,
        schedule: undefined,
        planning: { targetUnitTokens: 3000, charsPerToken: 4 },
        workers: { maxConcurrency: 4, timeoutSeconds: 600, memoryMiB: 2048, maxReceiveCount: 2 },
      }),
    );
    const drop = path.join(work, 'drop');
    await mkdir(path.join(drop, 'tiny'), { recursive: true });
    // A big JSONL file, some records without an id.
    await writeFile(
      path.join(drop, 'big.jsonl'),
      jsonl(
        Array.from({ length: 400 }, (_, i) =>
          i % 5 === 0 ? { text: words(i, 30) } : { id: `j${i}`, text: words(i, 30) },
        ),
      ),
    );
    for (let i = 0; i < 400; i += 1)
      expectedIds.add(i % 5 === 0 ? `incoming/docs/drop/big.jsonl:${i + 1}` : `j${i}`);
    // A CSV whose quoted fields hold newlines and commas.
    const rows = Array.from({ length: 300 }, (_, i) => `c${i},"${words(i + 7, 10)},\n${words(i, 15)} ""q"""`);
    await writeFile(path.join(drop, 'quoted.csv'), `id,text\r\n${rows.join('\r\n')}\r\n`);
    for (let i = 0; i < 300; i += 1) expectedIds.add(`c${i}`);
    // A big gzip, re-staged.
    await writeFile(
      path.join(drop, 'export.jsonl.gz'),
      gzipSync(jsonl(Array.from({ length: 500 }, (_, i) => ({ id: `g${i}`, text: words(i + 3, 25) })))),
    );
    for (let i = 0; i < 500; i += 1) expectedIds.add(`g${i}`);
    // Parquet with several row groups.
    const texts = Array.from({ length: 200 }, (_, i) => words(i + 11, 30));
    await writeFile(
      path.join(drop, 'table.parquet'),
      parquetFile({ id: texts.map((_, i) => `p${i}`), text: texts }, 20),
    );
    for (let i = 0; i < 200; i += 1) expectedIds.add(`p${i}`);
    // Many tiny files.
    for (let i = 0; i < 150; i += 1) {
      await writeFile(path.join(drop, 'tiny', `${i}.jsonl`), jsonl([{ id: `t${i}`, text: words(i, 6) }]));
      expectedIds.add(`t${i}`);
    }
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('embeds every record exactly once, in units of about equal cost shown by sluice status', async () => {
    const run = await sluice(
      'run',
      path.join(work, 'drop'),
      '--pipeline',
      'docs',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    expect(run.code).toBe(0);
    const summary = run.json();
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: expectedIds.size, rejected: 0 },
    });
    expect(summary.counts.units).toBeGreaterThan(10);

    const docs = await sluice('query', 'select distinct doc_id from embeddings', '--home', home, '--json');
    const ids = (docs.json() as { doc_id: string }[]).map((r) => r.doc_id);
    expect(ids.length).toBe(expectedIds.size);
    expect(new Set(ids)).toEqual(expectedIds);

    const status = await sluice('status', summary.runId, '--home', home, '--json');
    const units = status.json().units as {
      estCost: number;
      actualCost: number;
      status: string;
      sourceKey: string;
    }[];
    expect(units).toHaveLength(summary.counts.units);
    expect(units.every((u) => u.status === 'succeeded' && u.estCost > 0 && u.actualCost > 0)).toBe(true);
    const sources = new Set(units.map((u) => u.sourceKey));
    for (const name of ['big.jsonl', 'quoted.csv', 'export.jsonl.gz', 'table.parquet'])
      expect(units.filter((u) => u.sourceKey.endsWith(name)).length).toBeGreaterThan(1);
    expect(sources.size).toBeGreaterThan(4);
  });
});
