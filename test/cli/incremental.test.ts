import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { jsonl } from '../core/factories.ts';

async function sluice(...argv: string[]) {
  const out: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: () => {} });
  return { code, json: () => JSON.parse(out.at(-1)!) };
}

describe('incremental runs', () => {
  let work: string;
  let home: string;
  let file: string;
  const docs = sampleDocuments(60, 5);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-incr-'));
    home = path.join(work, 'home');
    file = path.join(work, 'docs.jsonl');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('re-embeds only changed chunks, carries the rest, and counts removed chunks', async () => {
    await writeFile(file, jsonl(docs));
    const first = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    expect(first.counts.skippedUnchanged).toBe(0);

    const longest = [...docs].sort((a, b) => b.text.length - a.text.length)[0]!;
    const edited = docs.map((d) => {
      if (d.id === 'doc-0003') return { ...d, text: `${d.text} An extra closing sentence.` };
      if (d.id === longest.id) return { ...d, text: d.text.slice(0, 300) };
      return d;
    });
    await writeFile(file, jsonl(edited));
    const second = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    expect(second.counts.chunks).toBe(second.counts.embedded + second.counts.skippedUnchanged);
    expect(second.counts.embedded).toBeGreaterThanOrEqual(2);
    expect(second.counts.embedded).toBeLessThanOrEqual(4);
    expect(second.counts.removedChunks).toBeGreaterThan(0);
    expect(second.stats.endpointCalls).toBeGreaterThan(0);

    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    // Every chunk of the second run is in its table, and carried vectors equal the first run's.
    const [{ n }] = await q(`select count(*) as n from embeddings where run_id = '${second.runId}'`);
    expect(n).toBe(second.counts.chunks);
    const [{ differing }] = await q(
      `select count(*) as differing from embeddings a join embeddings b on a.chunk_id = b.chunk_id
       where a.run_id = '${first.runId}' and b.run_id = '${second.runId}' and a.text_sha256 = b.text_sha256 and a.embedding <> b.embedding`,
    );
    expect(differing).toBe(0);
  });
});
