import 'aws-sdk-client-mock-vitest/extend';
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AthenaClient, GetWorkGroupCommand } from '@aws-sdk/client-athena';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sluice } from '../support/cli.ts';
import { streamingBody } from '../support/sdk-bodies.ts';

const athenaMock = mockClient(AthenaClient);
const s3Mock = mockClient(S3Client);
const dynamoMock = mockClient(DynamoDBDocumentClient);

const RUN_ID = 'r-20261207T050000Z-a1b2c3';
const TABLE = 'Sluice-RunsTable-ABC';
const BUCKET = 'sluice-databucket-abc';
const REPORT_KEY = `runs/docs/${RUN_ID}/report.html`;
const SUMMARY_KEY = `runs/docs/${RUN_ID}/summary.json`;

const runItem = {
  pk: `RUN#${RUN_ID}`,
  sk: 'RUN',
  runId: RUN_ID,
  pipeline: 'docs',
  trigger: 's3',
  startedAt: '2026-12-07T05:00:00.000Z',
  inputs: ['incoming/docs/a.jsonl'],
  status: 'succeeded',
  finishedAt: '2026-12-07T05:03:00.000Z',
  totalUnits: 2,
  doneUnits: 2,
  failedUnits: 0,
};
const unitItem = (unitId: string, estCost: number, actualCost: number) => ({
  unitId,
  sourceKey: 'incoming/docs/a.jsonl',
  byteStart: unitId === 'u0000' ? 0 : 1000,
  byteEnd: unitId === 'u0000' ? 1000 : 2000,
  estCost,
  actualCost,
  records: 10,
  status: 'succeeded',
  attempts: 1,
  lastError: null,
  startedAt: '2026-12-07T05:00:10.000Z',
  finishedAt: '2026-12-07T05:01:10.000Z',
});

const body = (text: string) => ({ Body: streamingBody(text) as never });
const noSuchKey = () => Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' });

let dir: string;
let savedRegion: string | undefined;
beforeAll(() => {
  savedRegion = process.env.AWS_REGION;
  process.env.AWS_REGION = 'us-east-1';
});
afterAll(() => {
  if (savedRegion === undefined) delete process.env.AWS_REGION;
  else process.env.AWS_REGION = savedRegion;
});
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sluice-report-deployed-'));
  athenaMock.on(GetWorkGroupCommand).resolves({
    WorkGroup: {
      Name: 'sluice',
      Configuration: { ResultConfiguration: { OutputLocation: `s3://${BUCKET}/athena-results/` } },
    },
  });
  dynamoMock.on(GetCommand).resolves({ Item: runItem });
  dynamoMock.on(QueryCommand).resolves({ Items: [unitItem('u0000', 500, 480), unitItem('u0001', 700, 910)] });
  s3Mock.on(ListObjectsV2Command).resolves({ Contents: [] });
});
afterEach(async () => {
  athenaMock.reset();
  s3Mock.reset();
  dynamoMock.reset();
  await rm(dir, { recursive: true, force: true });
});

describe('sluice report --deployed', () => {
  it('downloads the report finalize wrote beside summary.json as it is, to ./<runId>-report.html by default', async () => {
    s3Mock
      .on(GetObjectCommand, { Key: REPORT_KEY })
      .resolves(body('<!doctype html><p>finalize wrote me</p>'));
    const cwd = process.cwd();
    process.chdir(dir);
    let result: Awaited<ReturnType<typeof sluice>>;
    try {
      result = await sluice('report', RUN_ID, '--deployed', '--runs-table', TABLE, '--stack', 'SluiceDev');
    } finally {
      process.chdir(cwd);
    }

    expect(result.code).toBe(0);
    const file = path.join(await realpath(dir), `${RUN_ID}-report.html`);
    expect(result.out).toEqual([file]);
    expect(result.err).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe('<!doctype html><p>finalize wrote me</p>');
    expect(athenaMock).toHaveReceivedCommandWith(GetWorkGroupCommand, {
      WorkGroup: expect.stringMatching(/SluiceDev/i),
    });
    expect(dynamoMock).toHaveReceivedCommandWith(GetCommand, {
      TableName: TABLE,
      Key: { pk: `RUN#${RUN_ID}`, sk: 'RUN' },
    });
    expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: BUCKET, Key: REPORT_KEY });
    expect(s3Mock).not.toHaveReceivedCommand(ListObjectsV2Command);
  });

  it('builds the report from the runs table and the bucket when finalize wrote none, and writes it to --out only', async () => {
    s3Mock.on(GetObjectCommand, { Key: REPORT_KEY }).rejects(noSuchKey());
    s3Mock.on(GetObjectCommand, { Key: SUMMARY_KEY }).rejects(noSuchKey());
    const out = path.join(dir, 'reports', 'run.html');

    const result = await sluice('report', RUN_ID, '--deployed', '--runs-table', TABLE, '--out', out);

    expect(result.code).toBe(0);
    expect(result.out).toEqual([out]);
    expect(result.err).toEqual([
      `no s3://${BUCKET}/${REPORT_KEY} (finalize could not write it): built the report from the runs table and the bucket`,
    ]);
    const html = await readFile(out, 'utf8');
    expect(html).toContain(`<h1>Run ${RUN_ID}</h1>`);
    const data = /<script type="application\/json" id="sluice-report-data">(.*?)<\/script>/s.exec(html)?.[1];
    expect(JSON.parse(data!).runId).toBe(RUN_ID);
    // The units' measured costs come from the mocked runs table.
    expect(data).toContain('910');
    expect(dynamoMock).toHaveReceivedCommandWith(QueryCommand, { TableName: TABLE });
    expect(s3Mock).toHaveReceivedCommandWith(ListObjectsV2Command, {
      Bucket: BUCKET,
      Prefix: expect.stringContaining(`results/rejects/pipeline=docs/`),
    });
    expect(s3Mock).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('builds the report of a run still running from its finished units, and says so', async () => {
    dynamoMock.on(GetCommand).resolves({
      Item: { ...runItem, status: 'running', finishedAt: undefined, doneUnits: 1 },
    });
    s3Mock.on(GetObjectCommand).rejects(noSuchKey());
    const out = path.join(dir, 'running.html');

    const result = await sluice('report', RUN_ID, '--deployed', '--runs-table', TABLE, '--out', out);

    expect(result.code).toBe(0);
    expect(result.err).toEqual([
      `run ${RUN_ID} is still running (no s3://${BUCKET}/${REPORT_KEY} yet): built the report from the units finished so far`,
    ]);
    expect(await readFile(out, 'utf8')).toContain(`<h1>Run ${RUN_ID}</h1>`);
    // A running run's summary.json is not looked for: only the report's key was asked.
    expect(s3Mock).toHaveReceivedCommandTimes(GetObjectCommand, 1);
  });

  it('says in one line, exit 2, that the runs table has no such run, before looking for the bucket', async () => {
    dynamoMock.on(GetCommand).resolves({});

    const result = await sluice(
      'report',
      'r-nope',
      '--deployed',
      '--runs-table',
      TABLE,
      '--out',
      path.join(dir, 'x.html'),
    );

    expect(result.code).toBe(2);
    expect(result.err).toEqual([
      `sluice report: no run r-nope in runs table ${TABLE} (list runs with: sluice status --deployed)`,
    ]);
    expect(athenaMock.calls()).toHaveLength(0);
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it('reports access denied on the bucket in one line with exit 1, and writes no file', async () => {
    s3Mock
      .on(GetObjectCommand)
      .rejects(
        Object.assign(new Error('User is not authorized to perform: s3:GetObject'), { name: 'AccessDenied' }),
      );
    const out = path.join(dir, 'denied.html');

    const result = await sluice('report', RUN_ID, '--deployed', '--runs-table', TABLE, '--out', out);

    expect(result.code).toBe(1);
    expect(result.err).toEqual(['sluice report failed: User is not authorized to perform: s3:GetObject']);
    await expect(readFile(out)).rejects.toThrow(/ENOENT/);
  });

  it('refuses --home with --deployed, and --runs-table without it', async () => {
    const mixed = await sluice('report', RUN_ID, '--deployed', '--home', dir);
    expect(mixed.code).toBe(2);
    expect(mixed.err).toEqual(['sluice report: --home is for local results; --deployed reads the stack']);
    const alone = await sluice('report', RUN_ID, '--runs-table', TABLE);
    expect(alone.code).toBe(2);
    expect(alone.err).toEqual(['sluice report: --runs-table needs --deployed']);
  });
});
