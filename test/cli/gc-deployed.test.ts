import 'aws-sdk-client-mock-vitest/extend';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  GetWorkGroupCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { REFRESHED_BY_SQL } from '../../cli/gc/current-runs.ts';
import type { DeployedGcReport } from '../../cli/gc/deployed-gc.ts';
import { sluice } from '../support/cli.ts';

const athenaMock = mockClient(AthenaClient);
const s3Mock = mockClient(S3Client);

const R1 = 'r-20260101T000000Z-000001'; // superseded: removed
const R2 = 'r-20260102T000000Z-000002'; // holds a current verdict: kept
const R3 = 'r-20260103T000000Z-000003'; // failed: kept
const R4 = 'r-20260104T000000Z-000004'; // newest: kept
const RUNS_SQL = 'SELECT pipeline, run_id, status, started_at FROM runs';

const rows = (header: string[], data: string[][]) => ({
  ResultSet: {
    ResultSetMetadata: { ColumnInfo: header.map((Name) => ({ Name, Type: 'varchar' })) },
    Rows: [header, ...data].map((r) => ({ Data: r.map((v) => ({ VarCharValue: v })) })),
  },
});

beforeEach(() => {
  athenaMock.on(GetWorkGroupCommand).resolves({
    WorkGroup: {
      Name: 'sluice',
      Configuration: {
        ResultConfiguration: { OutputLocation: 's3://sluice-databucket-abc/athena-results/' },
      },
    },
  });
  athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-current' });
  athenaMock
    .on(StartQueryExecutionCommand, { QueryString: RUNS_SQL })
    .resolves({ QueryExecutionId: 'q-runs' });
  athenaMock
    .on(StartQueryExecutionCommand, { QueryString: REFRESHED_BY_SQL })
    .resolves({ QueryExecutionId: 'q-refreshed' });
  athenaMock.on(GetQueryExecutionCommand).callsFake((input: { QueryExecutionId: string }) => ({
    QueryExecution: {
      QueryExecutionId: input.QueryExecutionId,
      StatementType: 'DML',
      Status: { State: 'SUCCEEDED' },
      Statistics: { DataScannedInBytes: 1024 },
    },
  }));
  athenaMock.on(GetQueryResultsCommand, { QueryExecutionId: 'q-runs' }).resolves(
    rows(
      ['pipeline', 'run_id', 'status', 'started_at'],
      [
        ['docs', R1, 'succeeded', '2026-01-01T00:00:00.000Z'],
        ['docs', R2, 'succeeded', '2026-01-02T00:00:00.000Z'],
        ['docs', R3, 'failed', '2026-01-03T00:00:00.000Z'],
        ['docs', R4, 'succeeded', '2026-01-04T00:00:00.000Z'],
      ],
    ),
  );
  athenaMock.on(GetQueryResultsCommand, { QueryExecutionId: 'q-current' }).resolves(
    rows(
      ['pipeline', 'run_id'],
      [
        ['docs', R2],
        ['docs', R4],
      ],
    ),
  );
  // R1 read no source a `sources` row names (as runs before that table): only its age holds it.
  refreshedBy([
    ['docs', R2, R2],
    ['docs', R4, R4],
  ]);
  s3Mock.on(ListObjectsV2Command).resolves({ Contents: [] });
  s3Mock
    .on(ListObjectsV2Command, { Prefix: `results/embeddings/pipeline=docs/run_date=2026-01-01/${R1}-` })
    .resolves({
      Contents: [
        { Key: `results/embeddings/pipeline=docs/run_date=2026-01-01/${R1}-u00000.parquet`, Size: 4000 },
        { Key: `results/embeddings/pipeline=docs/run_date=2026-01-01/${R1}-u00001.parquet`, Size: 6000 },
      ],
    });
  s3Mock
    .on(ListObjectsV2Command, { Prefix: `runs/docs/${R1}/docs/` })
    .resolves({ Contents: [{ Key: `runs/docs/${R1}/docs/u00000.tsv`, Size: 100 }] });
  s3Mock.on(DeleteObjectsCommand).resolves({});
});
afterEach(() => {
  athenaMock.reset();
  s3Mock.reset();
  vi.useRealTimers();
});

/** What REFRESHED_BY_SQL answers: per run, the earliest latest reader of its sources. */
function refreshedBy(data: string[][]): void {
  athenaMock
    .on(GetQueryResultsCommand, { QueryExecutionId: 'q-refreshed' })
    .resolves(rows(['pipeline', 'run_id', 'refreshed_by'], data));
}

const R1_KEYS = [
  `results/embeddings/pipeline=docs/run_date=2026-01-01/${R1}-u00000.parquet`,
  `results/embeddings/pipeline=docs/run_date=2026-01-01/${R1}-u00001.parquet`,
  `runs/docs/${R1}/docs/u00000.tsv`,
];

describe('sluice gc --deployed', () => {
  it("deletes only the superseded run's parts and finalize lists, in the bucket the workgroup writes to", async () => {
    const result = await sluice('gc', '--deployed', '--keep-runs', '1', '--json');

    expect(result.code, result.err.join('\n')).toBe(0);
    const report = result.json<DeployedGcReport>();
    expect(report.bucket).toBe('sluice-databucket-abc');
    expect(Object.fromEntries(report.runs.map((r) => [r.runId, [r.remove, r.reason]]))).toEqual({
      [R4]: [false, 'among the newest 1'],
      [R3]: [false, 'failed: redrive reads its parts'],
      [R2]: [false, 'the current state reads it'],
      [R1]: [true, 'superseded: every source and record it wrote has a newer version'],
    });
    expect(athenaMock).toHaveReceivedCommandWith(StartQueryExecutionCommand, {
      WorkGroup: 'sluice',
      QueryExecutionContext: { Database: 'sluice', Catalog: 'AwsDataCatalog' },
    });
    expect(s3Mock).toHaveReceivedCommandTimes(DeleteObjectsCommand, 1);
    expect(s3Mock).toHaveReceivedCommandWith(DeleteObjectsCommand, {
      Bucket: 'sluice-databucket-abc',
      Delete: { Objects: R1_KEYS.map((Key) => ({ Key })), Quiet: true },
    });
    expect(report.runs.find((r) => r.runId === R1)?.bytes).toBe(10_100);
  });

  it('deletes nothing with --dry-run, and says so', async () => {
    const result = await sluice('gc', '--deployed', '--keep-runs', '1', '--dry-run');

    expect(result.code, result.err.join('\n')).toBe(0);
    expect(s3Mock).not.toHaveReceivedCommand(DeleteObjectsCommand);
    expect(result.out).toContain(
      `${R1}  docs  would delete 3 objects, 9.9 KB (superseded: every source and record it wrote has a newer version)`,
    );
    expect(result.out.at(-1)).toMatch(
      /^s3:\/\/sluice-databucket-abc: 1 of 4 finalized runs would give up 9\.9 KB \(dry run: nothing deleted\)/,
    );
  });

  it('fails in one line when S3 refuses some deletes', async () => {
    s3Mock.on(DeleteObjectsCommand).resolves({
      Errors: [{ Key: R1_KEYS[0], Code: 'AccessDenied', Message: 'Access Denied' }],
    });

    const result = await sluice('gc', '--deployed', '--keep-runs', '1');

    expect(result.code).toBe(1);
    expect(result.err).toEqual([
      `sluice gc failed: S3 did not delete 1 of 3 keys (first: ${R1_KEYS[0]}: AccessDenied Access Denied); run sluice gc --deployed again`,
    ]);
  });

  it("keeps a superseded run's embeddings while the chunk index may read them: 8 days, then until a run a week later reads its sources", async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.parse('2026-01-08T12:00:00Z'));
    const young = await sluice('gc', '--deployed', '--keep-runs', '1', '--json');

    expect(young.code, young.err.join('\n')).toBe(0);
    expect(young.json<DeployedGcReport>().runs.find((r) => r.runId === R1)).toMatchObject({
      remove: false,
      keys: [],
      reason: 'its embeddings may still be read by the chunk index until 2026-01-09T00:00:00Z',
    });
    expect(s3Mock).not.toHaveReceivedCommand(DeleteObjectsCommand);

    vi.setSystemTime(Date.parse('2026-03-01T00:00:00Z'));
    refreshedBy([
      ['docs', R1, R4],
      ['docs', R2, R2],
      ['docs', R4, R4],
    ]);
    const carried = await sluice('gc', '--deployed', '--keep-runs', '1', '--json');

    expect(carried.json<DeployedGcReport>().runs.find((r) => r.runId === R1)).toMatchObject({
      remove: false,
      reason:
        'its embeddings may still be read by the chunk index: no run has read all its sources again 7 days or more after it',
    });
    expect(s3Mock).not.toHaveReceivedCommand(DeleteObjectsCommand);

    refreshedBy([['docs', R1, 'r-20260108T000000Z-000005']]);
    const refreshed = await sluice('gc', '--deployed', '--keep-runs', '1', '--json');

    expect(refreshed.json<DeployedGcReport>().runs.find((r) => r.runId === R1)?.remove).toBe(true);
    expect(s3Mock).toHaveReceivedCommandTimes(DeleteObjectsCommand, 1);
  });

  it('keeps the newest 3 runs per pipeline by default', async () => {
    const result = await sluice('gc', '--deployed', '--json');

    expect(
      result
        .json<DeployedGcReport>()
        .runs.filter((r) => r.remove)
        .map((r) => r.runId),
    ).toEqual([R1]);
  });
});
