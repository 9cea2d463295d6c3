import 'aws-sdk-client-mock-vitest/extend';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { athenaCost, leadingKeyword } from '../../cli/deployed/deployed-query.ts';
import { deployedTarget } from '../../cli/deployed/deployed-target.ts';
import { sluice } from '../support/cli.ts';

const athenaMock = mockClient(AthenaClient);
const dynamoMock = mockClient(DynamoDBDocumentClient);
const RUN_ID = 'r-20261207T050000Z-d3e4f5';
const MB = 1024 * 1024;

let savedRegion: string | undefined;
beforeAll(() => {
  savedRegion = process.env.AWS_REGION;
  process.env.AWS_REGION = 'us-east-1';
});
afterAll(() => {
  if (savedRegion === undefined) delete process.env.AWS_REGION;
  else process.env.AWS_REGION = savedRegion;
});
afterEach(() => {
  athenaMock.reset();
  dynamoMock.reset();
});

function athenaAnswers(rows: string[][], scanned = 52 * MB) {
  athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-42' });
  athenaMock.on(GetQueryExecutionCommand).resolves({
    QueryExecution: {
      QueryExecutionId: 'q-42',
      StatementType: 'DML',
      Status: { State: 'SUCCEEDED' },
      Statistics: { DataScannedInBytes: scanned },
    },
  });
  athenaMock.on(GetQueryResultsCommand).resolves({
    ResultSet: {
      ResultSetMetadata: {
        ColumnInfo: [
          { Name: 'pipeline', Type: 'varchar' },
          { Name: 'n', Type: 'bigint' },
        ],
      },
      Rows: [['pipeline', 'n'], ...rows].map((r) => ({ Data: r.map((v) => ({ VarCharValue: v })) })),
    },
  });
}

describe('sluice query --deployed', () => {
  it("runs the SQL in the stack's workgroup and Glue database, prints rows and what Athena scanned", async () => {
    athenaAnswers([
      ['docs', '120'],
      ['news', '7'],
    ]);

    const result = await sluice(
      'query',
      'select pipeline, count(*) n from embeddings group by 1',
      '--deployed',
    );

    expect(result.code).toBe(0);
    expect(athenaMock).toHaveReceivedCommandWith(StartQueryExecutionCommand, {
      WorkGroup: 'sluice',
      QueryExecutionContext: { Database: 'sluice', Catalog: 'AwsDataCatalog' },
    });
    expect(result.out.slice(0, 4)).toEqual(['pipeline  n', '--------  ---', 'docs      120', 'news      7']);
    expect(result.out[4]).toBe('(2 rows)');
    expect(result.out[5]).toMatch(
      /^Athena scanned 52\.0 MB \(billed 52\.0 MB: whole MB, 10 MB at least\): about \$0\.00025 at \$5 per TB scanned in us-east-1; query q-42 in workgroup sluice$/,
    );
  });

  it('names the workgroup and database after --stack as the stack names them, and prints typed JSON rows with --json', async () => {
    athenaAnswers([['docs', '120']]);

    const result = await sluice('query', 'select 1', '--deployed', '--stack', 'Sluice-Dev', '--json');

    expect(result.code).toBe(0);
    expect(athenaMock).toHaveReceivedCommandWith(StartQueryExecutionCommand, {
      WorkGroup: 'sluice-dev',
      QueryExecutionContext: { Database: 'sluice_dev', Catalog: 'AwsDataCatalog' },
    });
    expect(result.json()).toEqual([{ pipeline: 'docs', n: 120 }]);
    expect(result.err).toEqual([expect.stringMatching(/^Athena scanned 52\.0 MB .*; query q-42$/)]);
  });

  it('takes the stack from SLUICE_STACK when --stack is absent', () => {
    expect(deployedTarget({}, { SLUICE_STACK: 'SluiceProd' })).toMatchObject({
      workGroup: 'sluiceprod',
      database: 'sluiceprod',
    });
    expect(deployedTarget({ stack: 'Other' }, { SLUICE_STACK: 'SluiceProd' }).workGroup).toBe('other');
  });

  it("fails with exit 1 and Athena's reason in one line when the query fails", async () => {
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-43' });
    athenaMock.on(GetQueryExecutionCommand).resolves({
      QueryExecution: {
        QueryExecutionId: 'q-43',
        Status: {
          State: 'FAILED',
          StateChangeReason: 'TABLE_NOT_FOUND: line 1:15: Table awsdatacatalog.sluice.nope does not exist',
        },
      },
    });

    const result = await sluice('query', 'select * from nope', '--deployed');

    expect(result).toEqual({
      code: 1,
      out: [],
      err: [
        'sluice query failed: Athena query q-43 failed in workgroup sluice: TABLE_NOT_FOUND: line 1:15: Table awsdatacatalog.sluice.nope does not exist',
      ],
    });
  });

  it('refuses a statement that writes unless --unsafe, before calling Athena', async () => {
    const refused = await sluice('query', '/* oops */ drop table embeddings', '--deployed');
    expect(refused.code).toBe(2);
    expect(refused.err[0]).toMatch(
      /^sluice query: query refused: --deployed runs SELECT, WITH, .*\(this one starts with DROP\)/,
    );
    expect(athenaMock).not.toHaveReceivedCommand(StartQueryExecutionCommand);

    athenaAnswers([]);
    expect((await sluice('query', 'drop table embeddings', '--deployed', '--unsafe')).code).toBe(0);
  });

  it('stops at --max-rows and says the rest was not fetched', async () => {
    athenaAnswers([
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ]);

    const result = await sluice('query', 'select 1', '--deployed', '--max-rows', '2');

    expect(result.out[4]).toBe('(2 rows; more rows than --max-rows 2, the rest not fetched)');
  });

  it('refuses flags of one side on the other: --home with --deployed, --stack without it', async () => {
    expect((await sluice('query', 'select 1', '--deployed', '--home', '/tmp/x')).err).toEqual([
      'sluice query: --home is for local results; --deployed reads the stack',
    ]);
    expect((await sluice('query', 'select 1', '--stack', 'X')).err).toEqual([
      'sluice query: --stack needs --deployed',
    ]);
    expect((await sluice('query', 'select 1', '--deployed', '--stack', 'bad_name')).code).toBe(2);
  });
});

describe('athenaCost and leadingKeyword', () => {
  it('bills whole megabytes with a 10 MB minimum', () => {
    expect(athenaCost(1, 'us-east-1').bytesBilled).toBe(10 * MB);
    expect(athenaCost(10 * MB + 1, 'us-east-1').bytesBilled).toBe(11 * MB);
    expect(athenaCost(1024 ** 4, 'us-east-1').usd).toBe(5);
    expect(athenaCost(1024 ** 4, 'eu-west-1').usd).toBeUndefined();
  });

  it('reads the first keyword past comments and parentheses', () => {
    expect(leadingKeyword('-- note\n  (SELECT 1)')).toBe('select');
    expect(leadingKeyword('/* a */ WITH x AS (select 1) select * from x')).toBe('with');
    expect(leadingKeyword('insert into t values (1)')).toBe('insert');
  });
});

const runItem = {
  pk: `RUN#${RUN_ID}`,
  sk: 'RUN',
  runId: RUN_ID,
  pipeline: 'docs',
  trigger: 's3',
  startedAt: '2026-12-07T05:00:00.000Z',
  inputs: ['incoming/docs/a.jsonl'],
  status: 'failed',
  finishedAt: '2026-12-07T05:03:00.000Z',
  totalUnits: 2,
  doneUnits: 1,
  failedUnits: 1,
};
const unitItem = (unitId: string, status: string, lastError: string | null) => ({
  unitId,
  sourceKey: 'incoming/docs/a.jsonl',
  byteStart: unitId === 'u0000' ? 0 : 1000,
  byteEnd: unitId === 'u0000' ? 1000 : 2000,
  estCost: 500,
  actualCost: 480,
  records: 10,
  status,
  attempts: 3,
  lastError,
});

describe('sluice status --deployed', () => {
  it('lists the newest runs from the runs table index, 50 unless --limit says', async () => {
    dynamoMock.on(QueryCommand).resolves({ Items: [runItem] });
    dynamoMock.on(GetCommand).resolves({});

    const result = await sluice('status', '--deployed', '--runs-table', 'Sluice-RunsTable-ABC');

    expect(result.code).toBe(0);
    expect(dynamoMock).toHaveReceivedCommandWith(QueryCommand, {
      TableName: 'Sluice-RunsTable-ABC',
      IndexName: 'byStartedAt',
      ScanIndexForward: false,
      Limit: 50,
    });
    expect(result.out).toEqual([
      `${RUN_ID}  docs         failed    units 2/2  started 2026-12-07T05:00:00.000Z`,
    ]);

    await sluice('status', '--deployed', '--runs-table', 'Sluice-RunsTable-ABC', '--limit', '5');
    expect(dynamoMock).toHaveReceivedNthCommandWith(QueryCommand, 2, { Limit: 5 });
  });

  it("shows each listed run's stage and work pool, which the index does not project, from its item", async () => {
    // What the byStartedAt index returns: its INCLUDE projection, without stage, stages, workPool, splitStack.
    const indexed = (runId: string) => ({ ...runItem, runId, gsi1pk: 'RUNS', gsi1sk: `x#${runId}` });
    const older = 'r-20261207T040000Z-000000';
    dynamoMock.on(QueryCommand).resolves({ Items: [indexed(RUN_ID), indexed(older)] });
    dynamoMock.on(GetCommand, { Key: { pk: `RUN#${RUN_ID}`, sk: 'RUN' } }).resolves({
      Item: { stage: 'score', stages: ['fit', 'score'], workPool: 'compute', splitStack: true },
    });
    // A run planned before plan recorded its pool.
    dynamoMock
      .on(GetCommand, { Key: { pk: `RUN#${older}`, sk: 'RUN' } })
      .resolves({ Item: { stage: 'embed' } });

    const result = await sluice('status', '--deployed', '--runs-table', 'T');

    expect(result.code).toBe(0);
    expect(result.out).toEqual([
      `${RUN_ID}  docs         failed    units 2/2  stage score (2/2)  pool compute of a split stack  started 2026-12-07T05:00:00.000Z`,
      `${older}  docs         failed    units 2/2  stage embed  started 2026-12-07T05:00:00.000Z`,
    ]);
    // Only the attributes the index lacks, not the item's growing countedUnitIds.
    const gets = dynamoMock.commandCalls(GetCommand).map((c) => c.args[0].input);
    expect(gets).toHaveLength(2);
    for (const get of gets) {
      expect(get.TableName).toBe('T');
      expect(Object.values(get.ExpressionAttributeNames ?? {}).sort()).toEqual([
        'splitStack',
        'stage',
        'stages',
        'workPool',
      ]);
    }
    const json = (await sluice('status', '--deployed', '--runs-table', 'T', '--json')).json<object[]>();
    expect(json[0]).toMatchObject({ runId: RUN_ID, stage: 'score', workPool: 'compute', splitStack: true });
    expect(json[1]).not.toHaveProperty('workPool');
  });

  it('shows a run and each of its units, with the table from SLUICE_RUNS_TABLE', async () => {
    dynamoMock.on(GetCommand).resolves({ Item: runItem });
    dynamoMock.on(QueryCommand).resolves({
      Items: [
        unitItem('u0000', 'succeeded', null),
        unitItem('u0001', 'failed', 'endpoint refused: ModelError'),
      ],
    });
    process.env.SLUICE_RUNS_TABLE = 'Sluice-RunsTable-XYZ';
    try {
      const result = await sluice('status', RUN_ID, '--deployed', '--json');

      expect(result.code).toBe(0);
      expect(dynamoMock).toHaveReceivedCommandWith(GetCommand, {
        TableName: 'Sluice-RunsTable-XYZ',
        Key: { pk: `RUN#${RUN_ID}`, sk: 'RUN' },
      });
      const shown = result.json<{
        status: string;
        units: { unitId: string; status: string; lastError: string | null }[];
      }>();
      expect(shown.status).toBe('failed');
      expect(shown.units.map((u) => [u.unitId, u.status, u.lastError])).toEqual([
        ['u0000', 'succeeded', null],
        ['u0001', 'failed', 'endpoint refused: ModelError'],
      ]);
    } finally {
      delete process.env.SLUICE_RUNS_TABLE;
    }
  });

  it('says in one line how to find the runs table when none is named', async () => {
    const result = await sluice('status', '--deployed', '--stack', 'SluiceDev');

    expect(result.code).toBe(2);
    expect(result.err).toHaveLength(1);
    expect(result.err[0]).toMatch(/--runs-table NAME or SLUICE_RUNS_TABLE=NAME .*--stack-name SluiceDev/);
    expect(dynamoMock.calls()).toHaveLength(0);
  });

  it('reports an access error as a failure, not as a missing run', async () => {
    dynamoMock.on(GetCommand).rejects(
      Object.assign(new Error('User is not authorized to perform: dynamodb:GetItem'), {
        name: 'AccessDeniedException',
      }),
    );

    const result = await sluice('status', RUN_ID, '--deployed', '--runs-table', 'T');

    expect(result.code).toBe(1);
    expect(result.err).toEqual(['sluice status failed: User is not authorized to perform: dynamodb:GetItem']);
  });
});
