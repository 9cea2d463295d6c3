import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { sluice } from '../support/cli.ts';

/**
 * `sluice gc` on a home with real runs of the docs pipeline, on days 0, 1, 2 and 10 (the
 * clock faked):
 *   R1 reads a.jsonl, R2 reads b.jsonl, R3 and R4 read edited versions of a.jsonl.
 * With --keep-runs 1 only R4 is kept as newest; R2 still gives b.jsonl's latest verdict,
 * so it is kept; R1 and R3 are superseded (a.jsonl's latest verdict is R4's) and, from
 * day 11 (8 days after R3 started, and R4 read a.jsonl again over 7 days after both), give
 * up their parts. The current-state view must read the same rows before and after.
 */
const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-10-01T08:00:00Z');
const onDay = (day: number) => {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(T0 + day * DAY_MS);
};
const docs = (edit: number) =>
  Array.from({ length: 10 - (edit > 0 ? 1 : 0) }, (_, i) => ({
    id: `a${i}`,
    text: `document a${i} about rivers and locks${i < edit ? ` edited ${edit}` : ''} `.repeat(4),
  }));
/** Writes `count` per-chunk entries (format 1: sha, run id, a random 384-float vector) into a closed index. */
async function writeOldChunkEntries(dbDir: string, count: number): Promise<void> {
  const db = new ClassicLevel<string, Buffer>(dbDir, { valueEncoding: 'buffer' });
  await db.open();
  try {
    const text = (s: string) => Buffer.concat([Buffer.of(s.length, 0), Buffer.from(s)]);
    await db.batch(
      Array.from({ length: count }, (_, i) => ({
        type: 'put' as const,
        key: `docs/c/old${i}#0`,
        value: Buffer.concat([Buffer.of(1), text(`sha${i}`), text('r-old'), randomBytes(384 * 4)]),
      })),
    );
  } finally {
    await db.close();
  }
}

async function keysOf(dbDir: string): Promise<string[]> {
  const db = new ClassicLevel<string, Buffer>(dbDir, { valueEncoding: 'buffer' });
  await db.open();
  try {
    return await db.keys().all();
  } finally {
    await db.close();
  }
}

const jsonl = (rows: object[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

describe('sluice gc', () => {
  let work: string;
  let home: string;
  let aFile: string;
  const runIds: string[] = [];

  async function run(file: string, day: number): Promise<string> {
    onDay(day);
    const result = await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<{ runId: string }>().runId;
  }
  const current = async () =>
    (
      await sluice(
        'query',
        'select run_id, chunk_id, text_sha256 from embeddings_current order by chunk_id',
        '--home',
        home,
        '--json',
      )
    ).json<{ run_id: string; chunk_id: string }[]>();
  const chunkIndexDb = () => path.join(home, 'state', 'chunk-index', 'db');
  const partsOf = async (runId: string) => {
    const dir = path.join(home, 'bucket', 'results', 'embeddings', 'pipeline=docs');
    const files = await readdir(dir, { recursive: true });
    return files.filter((f) => path.basename(f).startsWith(`${runId}-`));
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-gc-'));
    home = path.join(work, 'home');
    await mkdir(path.join(work, 'p'));
    await mkdir(path.join(work, 'q'));
    aFile = path.join(work, 'p', 'a.jsonl');
    const bFile = path.join(work, 'q', 'b.jsonl');
    await writeFile(aFile, jsonl(docs(0)));
    await writeFile(bFile, jsonl(docs(0).map((d) => ({ ...d, id: d.id.replace('a', 'b') }))));
    runIds.push(await run(aFile, 0));
    runIds.push(await run(bFile, 1));
    await writeFile(aFile, jsonl(docs(1)));
    runIds.push(await run(aFile, 2));
    await writeFile(aFile, jsonl(docs(2)));
    runIds.push(await run(aFile, 10));
    vi.useRealTimers();
  }, 240_000);
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("keeps a superseded run's embeddings for 8 days after it started: chunk index entries may point at them", async () => {
    onDay(9);
    const result = await sluice('gc', '--home', home, '--keep-runs', '1', '--dry-run', '--json');

    expect(result.code, result.err.join('\n')).toBe(0);
    const decided = new Map(result.json<GcReport>().runs.map((r) => [r.runId, r]));
    expect(decided.get(runIds[0]!)?.remove).toBe(true);
    expect(decided.get(runIds[2]!)).toMatchObject({
      remove: false,
      files: [],
      reason: expect.stringMatching(
        /^its embeddings may still be read by the chunk index until 2026-10-11T08:00:0\dZ$/,
      ),
    });
  });

  it('says with --dry-run what would go and removes nothing', async () => {
    const before = await partsOf(runIds[0]!);
    onDay(11);
    const result = await sluice('gc', '--home', home, '--keep-runs', '1', '--dry-run', '--json');

    expect(result.code, result.err.join('\n')).toBe(0);
    const report = result.json<GcReport>();
    expect(report.runs.filter((r) => r.remove).map((r) => r.runId)).toEqual([runIds[2], runIds[0]]);
    expect(report.bytesAfter).toBe(report.bytesBefore);
    expect(await partsOf(runIds[0]!)).toEqual(before);
  });

  it('removes the parts of superseded runs only, and the current state reads the same rows after', async () => {
    const [r1, r2, r3, r4] = runIds as [string, string, string, string];
    const orphanStaging = path.join(
      home,
      'bucket',
      'staging',
      'r-20260101T000000Z-dead00',
      'x',
      'part-00000.jsonl',
    );
    await mkdir(path.dirname(orphanStaging), { recursive: true });
    await writeFile(orphanStaging, 'x'.repeat(1000));
    const deadWriterTemp = path.join(home, 'bucket', 'runs', 'docs', 'stray.json.12345.abc123.tmp');
    await writeFile(deadWriterTemp, '{');
    const currentBefore = await current();
    expect(new Set(currentBefore.map((r) => r.run_id))).toEqual(new Set([r2, r4]));
    // Per-chunk entries with their vectors, as an index written before it kept fingerprints per
    // document has them: gc, the first to open it here, removes them and gives the space back.
    await writeOldChunkEntries(chunkIndexDb(), 3000);

    onDay(11);
    const result = await sluice('gc', '--home', home, '--keep-runs', '1', '--json');

    expect(result.code, result.err.join('\n')).toBe(0);
    const report = result.json<GcReport>();
    const decided = Object.fromEntries(report.runs.map((r) => [r.runId, r]));
    expect(decided[r4]).toMatchObject({ remove: false, reason: 'among the newest 1' });
    expect(decided[r2]).toMatchObject({ remove: false, reason: 'the current state reads it' });
    expect(decided[r3]?.remove).toBe(true);
    expect(decided[r1]?.remove).toBe(true);
    expect(await partsOf(r1)).toEqual([]);
    expect(await partsOf(r3)).toEqual([]);
    expect(await partsOf(r2)).toHaveLength(1);
    expect(await partsOf(r4)).toHaveLength(1);
    expect(existsSync(path.join(home, 'bucket', 'runs', 'docs', r1, 'docs'))).toBe(false);
    expect(existsSync(path.join(home, 'bucket', 'runs', 'docs', r1, 'summary.json'))).toBe(true);
    expect(existsSync(orphanStaging)).toBe(false);
    expect(existsSync(deadWriterTemp)).toBe(false);
    expect(report.chunkIndex.compacted).toBe(true);
    expect(report.chunkIndex.bytesBefore - report.chunkIndex.bytesAfter).toBeGreaterThan(3000 * 1536);
    const keys = await keysOf(chunkIndexDb());
    expect(keys.filter((key) => key.startsWith('docs/d/')).length).toBeGreaterThan(0);
    expect(keys.filter((key) => !key.startsWith('docs/d/'))).toEqual([]);
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore);

    expect(await current()).toEqual(currentBefore);
    // History stays: every run keeps its runs row.
    const history = await sluice(
      'query',
      'select run_id from runs order by run_id',
      '--home',
      home,
      '--json',
    );
    expect(history.json<{ run_id: string }[]>().map((r) => r.run_id)).toEqual([...runIds].sort());
  });

  it('leaves the chunk index working: the next run of an unchanged file embeds nothing again', async () => {
    onDay(11);
    const result = await sluice('run', aFile, '--pipeline', 'docs', '--home', home, '--json');

    expect(result.code, result.err.join('\n')).toBe(0);
    const summary = result.json<{ counts: { embedded: number; skippedUnchanged: number; chunks: number } }>();
    expect(summary.counts.embedded).toBe(0);
    expect(summary.counts.skippedUnchanged).toBe(summary.counts.chunks);
  }, 120_000);

  it('refuses --keep-runs below 1 in one line', async () => {
    const result = await sluice('gc', '--home', home, '--keep-runs', '0');
    expect(result).toEqual({
      code: 2,
      out: [],
      err: ['sluice gc: --keep-runs must be a whole number of at least 1, got 0'],
    });
  });
});
