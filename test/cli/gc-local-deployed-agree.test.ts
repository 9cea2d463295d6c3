import 'aws-sdk-client-mock-vitest/extend';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  GetWorkGroupCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DeployedGcReport } from '../../cli/gc/deployed-gc.ts';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { queryLocalTables } from '../../cli/query/local-tables.ts';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-11-02T01:00:00Z');

const athenaMock = mockClient(AthenaClient);
const s3Mock = mockClient(S3Client);

/**
 * One history of two sources, written by real local runs with the clock faked (edits, a
 * run whose comparison was skipped, a run failed on rejects, a week's gap), then gc'd on
 * several days both ways: locally, and `--deployed` with Athena answering each query by
 * running it over the same home's tables and S3 listing the home's bucket. Both must decide
 * every run alike, and neither may remove a part a chunk index entry points at.
 */
describe('local and deployed gc over one history', () => {
  let work: string;
  let home: string;
  const fileA = () => path.join(work, 'a.jsonl');
  const fileB = () => path.join(work, 'b.jsonl');
  const docsA = sampleDocuments(16, 21).map((d) => ({ ...d, id: `a-${d.id}` }));
  const docsB = sampleDocuments(12, 22).map((d) => ({ ...d, id: `b-${d.id}` }));
  const ids = [...docsA, ...docsB].map((d) => d.id);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-gc-agree-'));
    home = path.join(work, 'home');
  });
  afterEach(() => {
    vi.useRealTimers();
    athenaMock.reset();
    s3Mock.reset();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const onDay = (day: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
  };
  const runOn = async (day: number, file: string, code = 0): Promise<string> => {
    onDay(day);
    const result = await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json');
    expect(result.code, [...result.err, ...result.out].join('\n')).toBe(code);
    return result.json<{ runId: string }>().runId;
  };

  /** Athena over the home's tables; S3 over the home's bucket. */
  const mockDeployed = () => {
    const bucketDir = path.join(home, 'bucket');
    const queries = new Map<string, string>();
    athenaMock.on(GetWorkGroupCommand).resolves({
      WorkGroup: {
        Name: 'sluice',
        Configuration: {
          ResultConfiguration: { OutputLocation: 's3://sluice-databucket-abc/athena-results/' },
        },
      },
    });
    athenaMock.on(StartQueryExecutionCommand).callsFake((input: { QueryString: string }) => {
      const id = `q-${queries.size}`;
      queries.set(id, input.QueryString);
      return { QueryExecutionId: id };
    });
    athenaMock.on(GetQueryExecutionCommand).callsFake((input: { QueryExecutionId: string }) => ({
      QueryExecution: {
        QueryExecutionId: input.QueryExecutionId,
        StatementType: 'DML',
        Status: { State: 'SUCCEEDED' },
        Statistics: { DataScannedInBytes: 1024 },
      },
    }));
    athenaMock.on(GetQueryResultsCommand).callsFake(async (input: { QueryExecutionId: string }) => {
      const { rows } = await queryLocalTables(bucketDir, queries.get(input.QueryExecutionId)!);
      const header = rows.length > 0 ? Object.keys(rows[0]!) : ['pipeline', 'run_id'];
      return {
        ResultSet: {
          ResultSetMetadata: { ColumnInfo: header.map((Name) => ({ Name, Type: 'varchar' })) },
          Rows: [header, ...rows.map((r) => header.map((h) => String(r[h])))].map((r) => ({
            Data: r.map((v) => ({ VarCharValue: v })),
          })),
        },
      };
    });
    s3Mock.on(ListObjectsV2Command).callsFake(async (input: { Prefix: string }) => {
      const all = (await readdir(bucketDir, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => path.relative(bucketDir, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
      return {
        Contents: all.filter((k) => k.startsWith(input.Prefix)).map((Key) => ({ Key, Size: 1 })),
        IsTruncated: false,
      };
    });
    s3Mock.on(DeleteObjectsCommand).rejects(new Error('a dry run deletes nothing'));
  };

  type Decisions = Record<string, [remove: boolean, reason: string]>;
  const gcBothWays = async (day: number, keepRuns: number): Promise<Decisions> => {
    onDay(day);
    const local = await sluice('gc', '--home', home, '--keep-runs', String(keepRuns), '--dry-run', '--json');
    expect(local.code, local.err.join('\n')).toBe(0);
    mockDeployed();
    const deployed = await sluice('gc', '--deployed', '--keep-runs', String(keepRuns), '--dry-run', '--json');
    expect(deployed.code, deployed.err.join('\n')).toBe(0);
    const localDecisions: Decisions = Object.fromEntries(
      local.json<GcReport>().runs.map((r) => [r.runId, [r.remove, r.reason]]),
    );
    const deployedDecisions: Decisions = Object.fromEntries(
      deployed.json<DeployedGcReport>().runs.map((r) => [r.runId, [r.remove, r.reason]]),
    );
    expect(deployedDecisions, `day ${day}, --keep-runs ${keepRuns}`).toEqual(localDecisions);
    return localDecisions;
  };

  /** Runs whose `embeddings` part some entry names, each part there. */
  const pointedAt = async (): Promise<Set<string>> => {
    const index = new LocalChunkIndex(path.join(home, 'state', 'chunk-index'));
    const runs = new Set<string>();
    try {
      for (const doc of (await index.lookupDocs('docs', ids)).values()) {
        const at = doc.chunks?.at;
        if (!at) continue;
        const part = path.join(home, 'bucket', unitPartKey('embeddings', 'docs', at.runId, at.unitId));
        await access(part);
        runs.add(at.runId);
      }
    } finally {
      await index.close();
    }
    return runs;
  };

  /** gc both ways on each day with --keep-runs 2 then 1; the last day's decisions at 1. */
  const gcDays = async (days: readonly number[]): Promise<Decisions> => {
    let decided: Decisions = {};
    for (const day of days)
      for (const keepRuns of [2, 1]) {
        decided = await gcBothWays(day, keepRuns);
        for (const runId of await pointedAt())
          expect(decided[runId]?.[0], `day ${day}: ${runId} removed while entries point at it`).toBe(false);
      }
    return decided;
  };

  it('decides every run alike, and removes no part an entry points at', async () => {
    await writeFile(fileA(), jsonl(docsA));
    await writeFile(fileB(), jsonl(docsB));
    const a0 = await runOn(0, fileA());
    const b1 = await runOn(1, fileB());
    await gcDays([2]);
    await writeFile(fileA(), jsonl(docsA.map((d, i) => (i < 3 ? { ...d, text: `${d.text} Day 3.` } : d))));
    const a3 = await runOn(3, fileA());

    // a's manifest pointer made unreadable: day 7.5 reads a, its comparison skipped.
    const sourcesDir = path.join(home, 'bucket', 'runs', 'docs', 'sources');
    for (const hashed of await readdir(sourcesDir)) {
      const pointer = path.join(sourcesDir, hashed, 'current.json');
      if (JSON.parse(await readFile(pointer, 'utf8')).sourceKey.endsWith('a.jsonl'))
        await writeFile(pointer, '{}\n');
    }
    const skipped = await runOn(7.5, fileA());
    await runOn(8, fileA());
    await gcDays([8.5, 9.5]);
    const b9 = await runOn(9, fileB());

    // Day 10: a with rejects past the tolerated share: the run fails (its units rewrote the
    // entries 7+ days old, so they point at it).
    const bad = Array.from({ length: 10 }, (_, i) => ({ id: `a-bad-${i}`, title: 'no text' }));
    await writeFile(fileA(), jsonl([...docsA, ...bad]));
    const failed = await runOn(10, fileA(), 1);
    await writeFile(fileA(), jsonl(docsA));
    await runOn(12, fileA());
    const last = await gcDays([11, 13, 16, 17.5, 21, 30]);
    // Entries point at day 7.5 (a's documents carried since) and the failed day 10 (the three
    // edited back); b's were rewritten on day 9. What else has a newer version goes.
    expect(await pointedAt()).toEqual(new Set([skipped, failed, b9]));
    expect(last[a0]?.[0]).toBe(true);
    expect(last[a3]?.[0]).toBe(true);
    expect(last[b1]?.[0]).toBe(true);
    expect(last[skipped]).toEqual([
      false,
      'its embeddings may still be read by the chunk index: no run has read all its sources again 7 days or more after it',
    ]);
  }, 300_000);
});
