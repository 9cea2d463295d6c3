import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { readTable } from '../faults/support/run-tables.ts';
import { sluice } from '../support/cli.ts';

interface Written {
  readonly id: string;
  readonly sourceKey: string;
  readonly line: number;
  readonly text: string;
}

/** The record each id keeps under the rule: the last in (source key, byte offset) order. */
function expectedWinners(records: readonly Written[]): Map<string, Written> {
  const sorted = [...records].sort((a, b) =>
    a.sourceKey === b.sourceKey ? a.line - b.line : a.sourceKey < b.sourceKey ? -1 : 1,
  );
  return new Map(sorted.map((r) => [r.id, r]));
}

describe('duplicate ids', () => {
  let work: string;
  let home: string;
  let pipelines: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-dup-'));
    home = path.join(work, 'home');
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    // Units of a few records each, so duplicates fall in different units worked in parallel.
    for (const name of ['docs', 'credit-risk']) {
      const config = JSON.parse(await readFile(path.join('pipelines', `${name}.json`), 'utf8'));
      await writeFile(
        path.join(pipelines, `${name}.json`),
        // Duplicates are rejects, and here they are most of the input: tolerate them all.
        JSON.stringify({
          ...config,
          planning: { ...config.planning, targetUnitTokens: 200 },
          run: { ...config.run, toleratedRejectPercent: 100 },
        }),
      );
    }
    // The scoring model and its statistics are found beside the config.
    await symlink(path.resolve('pipelines', 'models'), path.join(pipelines, 'models'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('keeps the last record of an id in (source, offset) order and rejects the others, within and across files', async () => {
    const folder = path.join(work, 'in');
    await mkdir(folder);
    const written: Written[] = [];
    for (const [f, name] of ['b.jsonl', 'a.jsonl', 'c.jsonl'].entries()) {
      const lines: string[] = [];
      for (let i = 0; i < 40; i += 1) {
        // ids repeat within a file (every 7th line) and across files (ids 0..29 in every file).
        const id = i % 7 === 6 ? `d${i - 6}` : `d${i}`;
        const text = `file ${name} line ${i + 1} says ${'word '.repeat(1 + ((i * 7 + f) % 13))}`.trim();
        lines.push(JSON.stringify({ id, text }));
        written.push({ id, sourceKey: `incoming/docs/in/${name}`, line: i + 1, text });
      }
      await writeFile(path.join(folder, name), `${lines.join('\n')}\n`);
    }
    const result = await sluice(
      'run',
      folder,
      '--pipeline',
      'docs',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    expect(result.code).toBe(0);
    const summary = result.json();
    expect(summary.counts.units).toBeGreaterThan(3);
    const winners = expectedWinners(written);

    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    const kept = await q(
      `select doc_id, source_key, chunk_text, count(*) over (partition by doc_id) as copies
       from embeddings where run_id = '${summary.runId}' and chunk_index = 0`,
    );
    expect(kept).toHaveLength(winners.size);
    for (const row of kept) {
      expect(row.copies).toBe(1);
      const winner = winners.get(row.doc_id)!;
      expect(row.source_key).toBe(winner.sourceKey);
      expect(row.chunk_text).toBe(winner.text);
    }
    const rejects = await q(
      `select source_key, line, reason from rejects where run_id = '${summary.runId}' order by source_key, line`,
    );
    const losers = written.filter((r) => winners.get(r.id) !== r);
    expect(rejects).toHaveLength(losers.length);
    for (const reject of rejects) {
      const record = written.find(
        (r) => r.sourceKey === reject.source_key && r.line === Number(reject.line),
      )!;
      const winner = winners.get(record.id)!;
      expect(reject.reason).toBe(
        `duplicate id ${JSON.stringify(record.id)}: kept the record at ${winner.sourceKey} line ${winner.line}`,
      );
    }
    // Every record in exactly one table, and the summary says what the tables hold.
    expect(summary.counts.records).toBe(written.length);
    expect(summary.counts.rejected).toBe(losers.length);
    const [{ chunks }] = await q(
      `select count(*) as chunks from embeddings where run_id = '${summary.runId}'`,
    );
    expect(summary.counts.chunks).toBe(chunks);
    expect(summary.counts.embedded + summary.counts.skippedUnchanged).toBe(chunks);

    // A second finalize (redrive --resume has nothing to do; a re-run of the same input) stays exact.
    const again = (
      await sluice('run', folder, '--pipeline', 'docs', '--pipelines', pipelines, '--home', home, '--json')
    ).json();
    expect(again.counts.rejected).toBe(losers.length);
    expect(again.counts.chunks).toBe(chunks);
    expect(again.counts.embedded + again.counts.skippedUnchanged).toBe(chunks);
  });

  it('applies the same rule to scored rows', async () => {
    const sample = (await readFile(path.join('events', 'data', 'credit-sample.csv'), 'utf8')).split('\n');
    const header = sample[0]!;
    const rows = sample.slice(1, 301).filter((line) => line.length > 0);
    // Rows 0..99 again under their own ids in a second file, and ten repeats inside the first.
    const first = [...rows, ...rows.slice(0, 10)];
    const second = rows.slice(0, 100);
    const folder = path.join(work, 'scores');
    await mkdir(folder);
    await writeFile(path.join(folder, 'part-1.csv'), `${[header, ...first].join('\n')}\n`);
    await writeFile(path.join(folder, 'part-2.csv'), `${[header, ...second].join('\n')}\n`);
    const result = await sluice(
      'run',
      folder,
      '--pipeline',
      'credit-risk',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    expect(result.code).toBe(0);
    const summary = result.json();
    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    const [{ n, ids }] = await q(
      `select count(*) as n, count(distinct record_id) as ids from scores where run_id = '${summary.runId}'`,
    );
    expect(n).toBe(rows.length);
    expect(ids).toBe(rows.length);
    const [{ fromSecond }] = await q(
      `select count(*) as fromSecond from scores where run_id = '${summary.runId}' and source_key like '%part-2.csv'`,
    );
    expect(fromSecond).toBe(100);
    const [{ dups }] = await q(
      `select count(*) as dups from rejects where run_id = '${summary.runId}' and reason like 'duplicate id %'`,
    );
    expect(dups).toBe(110);
    expect(summary.counts.records).toBe(first.length + second.length);
    expect(summary.counts.scored).toBe(rows.length);
    expect(summary.counts.rejected).toBe(110);
  });

  it('applies the same rule to generations, on a first run and on a re-run answered from the prompt cache', async () => {
    const config = JSON.parse(await readFile(path.join('pipelines', 'generate-triage.json'), 'utf8'));
    await writeFile(
      path.join(pipelines, 'generate-triage.json'),
      JSON.stringify({
        ...config,
        // About seven tickets a unit (128 tokens each): duplicates fall in different units.
        planning: { ...config.planning, targetUnitTokens: 1_000 },
        run: { ...config.run, toleratedRejectPercent: 100 },
      }),
    );
    const folder = path.join(work, 'tickets');
    await mkdir(folder);
    const written: Written[] = [];
    for (const [f, name] of ['b.jsonl', 'a.jsonl'].entries()) {
      const lines: string[] = [];
      for (let i = 0; i < 20; i += 1) {
        // ids repeat within a file (every 5th line) and across files (t0..t14 in both).
        const id = i % 5 === 4 ? `t${i - 4}` : `t${i}`;
        const text = `file ${name} line ${i + 1}: ${['invoice charged twice', 'cannot log in', 'sync error'][(i + f) % 3]}`;
        lines.push(
          JSON.stringify({ id, product: 'Sluice Cloud', customer_tier: 'pro', subject: `case ${i}`, text }),
        );
        written.push({ id, sourceKey: `incoming/generate-triage/tickets/${name}`, line: i + 1, text });
      }
      await writeFile(path.join(folder, name), `${lines.join('\n')}\n`);
    }
    const winners = expectedWinners(written);
    const losers = written.filter((r) => winners.get(r.id) !== r);
    const run = async () => {
      const result = await sluice(
        'run',
        folder,
        '--pipeline',
        'generate-triage',
        '--pipelines',
        pipelines,
        '--home',
        home,
        '--json',
      );
      expect(result.code, result.err.join('\n')).toBe(0);
      return result.json();
    };
    // The parts read straight from the local bucket (the queries above already cover `sluice query`).
    const table = (name: 'generations' | 'rejects', runId: string) =>
      readTable(openHome(home).store, name, 'generate-triage', runId);

    for (const pass of ['first run', 're-run from the prompt cache']) {
      const summary = await run();
      expect(summary.counts.units, pass).toBeGreaterThan(3);
      const kept = await table('generations', summary.runId);
      expect(new Set(kept.map((row) => row.record_id)).size, `${pass}: one row per id`).toBe(kept.length);
      expect(kept, pass).toHaveLength(winners.size);
      for (const row of kept) {
        const winner = winners.get(String(row.record_id))!;
        expect([row.source_key, Number(row.line)], `${pass}: ${row.record_id}`).toEqual([
          winner.sourceKey,
          winner.line,
        ]);
      }
      const rejects = await table('rejects', summary.runId);
      expect(rejects, pass).toHaveLength(losers.length);
      for (const reject of rejects) {
        const record = written.find(
          (r) => r.sourceKey === reject.source_key && r.line === Number(reject.line),
        )!;
        const winner = winners.get(record.id)!;
        expect(reject.reason, pass).toBe(
          `duplicate id ${JSON.stringify(record.id)}: kept the record at ${winner.sourceKey} line ${winner.line}`,
        );
      }
      // Every record in exactly one table, and generated + cached count the rows kept.
      expect(summary.counts, pass).toMatchObject({ records: written.length, rejected: losers.length });
      expect(summary.counts.generated + summary.counts.cached, pass).toBe(winners.size);
      if (pass === 'first run') expect(summary.counts.cached, pass).toBe(0);
      else {
        expect(summary.counts.generated, pass).toBe(0);
        expect(
          kept.every((row) => Number(row.attempts) === 0),
          pass,
        ).toBe(true);
      }
    }
  });
});
