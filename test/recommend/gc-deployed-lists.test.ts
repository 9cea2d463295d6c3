import 'aws-sdk-client-mock-vitest/extend';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  GetWorkGroupCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DeployedGcReport } from '../../cli/gc/deployed-gc.ts';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import { sluice } from '../support/cli.ts';
import { type LocalAwsServer, localClientConfig, startDynalite } from '../support/local-aws.ts';
import { createRecommendationsTable } from '../support/recommendations-table.ts';

/** Athena and S3 answer from mocks (as in test/cli/gc-deployed.test.ts); DynamoDB is dynalite. */
const athenaMock = mockClient(AthenaClient);
const s3Mock = mockClient(S3Client);

const RECS = 'Sluice-RecommendationsTable';
const RUNS_SQL = 'SELECT pipeline, run_id, status, started_at FROM runs';
const AWS_VARS = [
  'AWS_ENDPOINT_URL_DYNAMODB',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'SLUICE_RECOMMENDATIONS_TABLE',
] as const;

/** Pipeline `recs`: R4 is served; R3 and R5 failed; R6 is still working (no `runs` row). */
const R = (day: number) => `r-2026010${day}T000000Z-00000${day}`;
const FINALIZED: [string, string, string][] = [
  ['recs', R(1), 'succeeded'],
  ['recs', R(2), 'succeeded'],
  ['recs', R(3), 'failed'],
  ['recs', R(4), 'succeeded'],
  ['recs', R(5), 'failed'],
  ['other', R(1), 'succeeded'],
];
/** Lists stored, by pipeline: user -> runs. */
const STORED: Record<string, Record<string, number[]>> = {
  recs: { a: [1, 2, 3, 4, 5, 6], gone: [1, 2], 'x#y': [2, 4] },
  other: { a: [1] },
};

const rows = (header: string[], data: string[][]) => ({
  ResultSet: {
    ResultSetMetadata: { ColumnInfo: header.map((Name) => ({ Name, Type: 'varchar' })) },
    Rows: [header, ...data].map((r) => ({ Data: r.map((v) => ({ VarCharValue: v })) })),
  },
});

let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
const saved = new Map<string, string | undefined>();

beforeAll(async () => {
  server = await startDynalite();
  for (const name of AWS_VARS) saved.set(name, process.env[name]);
  const config = localClientConfig(server.endpoint);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = server.endpoint;
  process.env.AWS_REGION = config.region;
  process.env.AWS_ACCESS_KEY_ID = config.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = config.credentials.secretAccessKey;
  delete process.env.SLUICE_RECOMMENDATIONS_TABLE;
  client = new DynamoDBClient(config);
  doc = DynamoDBDocumentClient.from(client);
  await createRecommendationsTable(client, RECS);
  const lists = new DynamoRecommendationLists({ doc, tableName: RECS });
  for (const [pipeline, users] of Object.entries(STORED))
    for (const day of [1, 2, 3, 4, 5, 6]) {
      const writer = lists.unitWriter(pipeline, R(day), 'similarity-00000');
      for (const [userId, days] of Object.entries(users))
        if (days.includes(day))
          await writer.add({ userId, items: [{ itemId: 'i1', score: 1, source: 'cf', neighbours: 2 }] });
      await writer.finish();
    }
});
afterAll(async () => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  client?.destroy();
  await server?.stop();
});

beforeEach(() => {
  athenaMock.on(GetWorkGroupCommand).resolves({
    WorkGroup: {
      Name: 'sluice',
      Configuration: { ResultConfiguration: { OutputLocation: 's3://sluice-data/athena-results/' } },
    },
  });
  athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-current' });
  athenaMock
    .on(StartQueryExecutionCommand, { QueryString: RUNS_SQL })
    .resolves({ QueryExecutionId: 'q-runs' });
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
      FINALIZED.map(([pipeline, runId, status]) => [
        pipeline,
        runId,
        status,
        `2026-01-0${runId.slice(9, 10)}T00:00:00.000Z`,
      ]),
    ),
  );
  athenaMock
    .on(GetQueryResultsCommand, { QueryExecutionId: 'q-current' })
    .resolves(rows(['pipeline', 'run_id'], []));
  s3Mock.on(ListObjectsV2Command).resolves({ Contents: [] });
  s3Mock.on(DeleteObjectsCommand).resolves({});
});
afterEach(() => {
  athenaMock.reset();
  s3Mock.reset();
});

/** `<pipeline> <user> <day>` of every item the table holds, sorted. */
async function items(): Promise<string[]> {
  const out = await doc.send(new ScanCommand({ TableName: RECS }));
  return (out.Items ?? [])
    .map((item) => {
      const [, pipeline, ...user] = (item.pk as string).split('#');
      return `${pipeline} ${user.join('#')} ${(item.runId as string).slice(9, 10)}`;
    })
    .sort();
}

const gc = (...args: string[]) => sluice('gc', '--deployed', ...args, '--json');

describe('sluice gc --deployed --recommendations-table', () => {
  it('reports on a dry run the lists of runs older than each pipeline’s served run, deleting none', async () => {
    const before = await items();
    const result = await gc('--recommendations-table', RECS, '--dry-run');
    expect(result.err).toEqual([]);
    expect(result.json<DeployedGcReport>().recommendationLists).toEqual({
      table: RECS,
      scanned: before.length,
      deleted: 6,
    });
    expect(await items()).toEqual(before);
  });

  it('deletes them: the served run’s, newer runs’ and unfinished runs’ lists stay, and other pipelines’ own', async () => {
    process.env.SLUICE_RECOMMENDATIONS_TABLE = RECS;
    try {
      const result = await gc();
      expect(result.code).toBe(0);
      expect(result.json<DeployedGcReport>().recommendationLists).toMatchObject({ deleted: 6 });
    } finally {
      delete process.env.SLUICE_RECOMMENDATIONS_TABLE;
    }
    // Gone: a's R1-R3, gone's R1-R2 (a user absent from the served run), x#y's R2.
    expect(await items()).toEqual(['other a 1', 'recs a 4', 'recs a 5', 'recs a 6', 'recs x#y 4']);
  });

  it('deletes nothing more when run again, and leaves the table alone when none is named', async () => {
    const again = await gc('--recommendations-table', RECS);
    expect(again.json<DeployedGcReport>().recommendationLists).toMatchObject({ deleted: 0, scanned: 5 });
    const unnamed = await gc();
    expect(unnamed.json<DeployedGcReport>().recommendationLists).toBeUndefined();
  });

  it('refuses --recommendations-table without --deployed in one line', async () => {
    const result = await sluice('gc', '--recommendations-table', RECS);
    expect(result.code).toBe(2);
    expect(result.err[0]).toContain('--recommendations-table needs --deployed');
  });
});
