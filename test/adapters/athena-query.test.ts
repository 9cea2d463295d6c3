import 'aws-sdk-client-mock-vitest/extend';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  type GetQueryExecutionCommandOutput,
  GetQueryResultsCommand,
  InvalidRequestException,
  type Row,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AthenaQueryFailed,
  AthenaQueryTimedOut,
  runAthenaQuery,
  typedValue,
} from '../../shared/adapters/aws/athena-query.ts';

const athenaMock = mockClient(AthenaClient);
const athena = new AthenaClient({ region: 'us-east-1' });
const ID = 'q-1f2e3d';

function execution(
  state: string,
  extra: Record<string, unknown> = {},
): Partial<GetQueryExecutionCommandOutput> {
  return {
    QueryExecution: {
      QueryExecutionId: ID,
      StatementType: 'DML',
      Status: { State: state as 'SUCCEEDED' },
      Statistics: { DataScannedInBytes: 123_456_789, TotalExecutionTimeInMillis: 1500 },
      ...extra,
    },
  };
}

const row = (...values: (string | undefined)[]): Row => ({
  Data: values.map((v) => (v === undefined ? {} : { VarCharValue: v })),
});
const COLUMNS = [
  { Name: 'doc_id', Type: 'varchar' },
  { Name: 'chunks', Type: 'bigint' },
  { Name: 'score', Type: 'double' },
  { Name: 'embedding', Type: 'array' },
];

/** Recorded sleeps and a clock that the sleeps move forward. */
function fakeTime() {
  let t = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: async (ms: number) => {
      slept.push(ms);
      t += ms;
    },
  };
}

const base = () => ({ athena, workGroup: 'sluice-dev', database: 'sluice_dev', ...fakeTime() });

afterEach(() => athenaMock.reset());

describe('runAthenaQuery', () => {
  it('starts the query in the workgroup and database, polls with growing delays, and returns typed rows with bytes scanned', async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock
      .on(GetQueryExecutionCommand)
      .resolvesOnce(execution('QUEUED'))
      .resolvesOnce(execution('RUNNING'))
      .resolvesOnce(execution('RUNNING'))
      .resolves(execution('SUCCEEDED'));
    athenaMock.on(GetQueryResultsCommand).resolves({
      ResultSet: {
        ResultSetMetadata: { ColumnInfo: COLUMNS },
        Rows: [
          row('doc_id', 'chunks', 'score', 'embedding'),
          row('d1', '3', '0.5', '[0.25, -1.0]'),
          row('d2', undefined, 'NaN', '[]'),
        ],
      },
    });
    const options = base();
    const result = await runAthenaQuery('SELECT * FROM embeddings', options);

    expect(athenaMock).toHaveReceivedCommandWith(StartQueryExecutionCommand, {
      QueryString: 'SELECT * FROM embeddings',
      WorkGroup: 'sluice-dev',
      QueryExecutionContext: { Database: 'sluice_dev', Catalog: 'AwsDataCatalog' },
    });
    expect(options.slept).toEqual([250, 500, 1000]);
    expect(result.columns).toEqual([
      { name: 'doc_id', type: 'varchar' },
      { name: 'chunks', type: 'bigint' },
      { name: 'score', type: 'double' },
      { name: 'embedding', type: 'array' },
    ]);
    expect(result.rows).toEqual([
      { doc_id: 'd1', chunks: 3, score: 0.5, embedding: [0.25, -1] },
      { doc_id: 'd2', chunks: null, score: Number.NaN, embedding: [] },
    ]);
    expect(result.bytesScanned).toBe(123_456_789);
    expect(result.truncated).toBe(false);
  });

  it('follows NextToken across pages, dropping the header only from the first page', async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock.on(GetQueryExecutionCommand).resolves(execution('SUCCEEDED'));
    const metadata = { ColumnInfo: [{ Name: 'n', Type: 'integer' }] };
    athenaMock
      .on(GetQueryResultsCommand)
      .resolvesOnce({
        ResultSet: { ResultSetMetadata: metadata, Rows: [row('n'), row('1'), row('2')] },
        NextToken: 't2',
      })
      .resolvesOnce({
        ResultSet: { ResultSetMetadata: metadata, Rows: [row('3'), row('4')] },
        NextToken: 't3',
      })
      .resolvesOnce({ ResultSet: { ResultSetMetadata: metadata, Rows: [row('5')] } });

    const result = await runAthenaQuery('SELECT n FROM t', base());

    expect(result.rows.map((r) => r.n)).toEqual([1, 2, 3, 4, 5]);
    const calls = athenaMock.commandCalls(GetQueryResultsCommand).map((c) => c.args[0].input.NextToken);
    expect(calls).toEqual([undefined, 't2', 't3']);
  });

  it('stops at the row limit, says the result was truncated, and asks for no page past it', async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock.on(GetQueryExecutionCommand).resolves(execution('SUCCEEDED'));
    const metadata = { ColumnInfo: [{ Name: 'n', Type: 'integer' }] };
    athenaMock
      .on(GetQueryResultsCommand)
      .resolvesOnce({
        ResultSet: { ResultSetMetadata: metadata, Rows: [row('n'), row('1'), row('2')] },
        NextToken: 't2',
      })
      .resolvesOnce({
        ResultSet: { ResultSetMetadata: metadata, Rows: [row('3'), row('4')] },
        NextToken: 't3',
      });

    const result = await runAthenaQuery('SELECT n FROM t', { ...base(), maxRows: 3 });

    expect(result.rows.map((r) => r.n)).toEqual([1, 2, 3]);
    expect(result.truncated).toBe(true);
    expect(athenaMock).toHaveReceivedCommandTimes(GetQueryResultsCommand, 2);
    expect(athenaMock).toHaveReceivedNthCommandWith(GetQueryResultsCommand, 1, { MaxResults: 5 });
  });

  it('keeps the first row of a DDL statement (SHOW TABLES has no header row)', async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock.on(GetQueryExecutionCommand).resolves(execution('SUCCEEDED', { StatementType: 'DDL' }));
    athenaMock.on(GetQueryResultsCommand).resolves({
      ResultSet: {
        ResultSetMetadata: { ColumnInfo: [{ Name: 'tab_name', Type: 'string' }] },
        Rows: [row('embeddings'), row('runs')],
      },
    });

    const result = await runAthenaQuery('SHOW TABLES', base());

    expect(result.rows).toEqual([{ tab_name: 'embeddings' }, { tab_name: 'runs' }]);
  });

  it("fails with one line carrying Athena's StateChangeReason when the query FAILED", async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock.on(GetQueryExecutionCommand).resolves(
      execution('FAILED', {
        Status: {
          State: 'FAILED',
          StateChangeReason: "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved\nmore detail",
        },
      }),
    );

    const error = await runAthenaQuery('SELECT nope FROM embeddings', base()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AthenaQueryFailed);
    expect((error as Error).message).toBe(
      `Athena query ${ID} failed in workgroup sluice-dev: COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved`,
    );
    expect(athenaMock).not.toHaveReceivedCommand(GetQueryResultsCommand);
  });

  it('fails when the query was CANCELLED (someone stopped it in the console)', async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock
      .on(GetQueryExecutionCommand)
      .resolvesOnce(execution('RUNNING'))
      .resolves(
        execution('CANCELLED', {
          Status: { State: 'CANCELLED', StateChangeReason: 'Query cancelled by user' },
        }),
      );

    await expect(runAthenaQuery('SELECT 1', base())).rejects.toThrow(
      `Athena query ${ID} was cancelled in workgroup sluice-dev: Query cancelled by user`,
    );
  });

  it('stops a query still running at the timeout and fails with one line', async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: ID });
    athenaMock.on(GetQueryExecutionCommand).resolves(execution('RUNNING'));
    athenaMock.on(StopQueryExecutionCommand).resolves({});
    const options = { ...base(), timeoutMs: 10_000 };

    const error = await runAthenaQuery('SELECT 1', options).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AthenaQueryTimedOut);
    expect((error as Error).message).toMatch(
      /^Athena query q-1f2e3d in workgroup sluice-dev still RUNNING after 10 s: stopped it/,
    );
    expect(athenaMock).toHaveReceivedCommandWith(StopQueryExecutionCommand, { QueryExecutionId: ID });
    expect(options.slept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10_000);
  });

  it('names the workgroup and database when Athena refuses to start the query', async () => {
    athenaMock
      .on(StartQueryExecutionCommand)
      .rejects(new InvalidRequestException({ message: 'WorkGroup sluice-dev is not found.', $metadata: {} }));

    await expect(runAthenaQuery('SELECT 1', base())).rejects.toThrow(
      'Athena refused the query in workgroup sluice-dev (database sluice_dev): InvalidRequestException: WorkGroup sluice-dev is not found.',
    );
  });
});

describe('typedValue', () => {
  it('keeps a bigint beyond 2^53 as text instead of losing digits', () => {
    expect(typedValue('9007199254740993', 'bigint')).toBe('9007199254740993');
    expect(typedValue('42', 'bigint')).toBe(42);
  });

  it('reads booleans, leaves decimals and timestamps as Athena prints them, and a non-numeric array as text', () => {
    expect(typedValue('true', 'boolean')).toBe(true);
    expect(typedValue('1.10', 'decimal')).toBe('1.10');
    expect(typedValue('2026-12-07 05:00:00.000', 'timestamp')).toBe('2026-12-07 05:00:00.000');
    expect(typedValue('[a, b]', 'array')).toBe('[a, b]');
  });
});
