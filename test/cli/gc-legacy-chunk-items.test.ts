import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  GetWorkGroupCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  type DynamoDBDocumentClient,
  PutCommand,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DeployedGcReport } from '../../cli/gc/deployed-gc.ts';
import { sweepLegacyChunkItems } from '../../cli/gc/deployed-legacy-chunk-items.ts';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { DynamoPromptCache } from '../../shared/adapters/aws/dynamo-prompt-cache.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { dynamoItemBytes } from '../../shared/cost/dynamo-item-size.ts';
import { writeRequestUnits } from '../../shared/cost/dynamo-request-units.ts';
import { BatchIncomplete } from '../../shared/errors/errors.ts';
import { aDoc } from '../contract/chunk-index-contract.ts';
import { sluice } from '../support/cli.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { localClientConfig } from '../support/local-aws.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-legacy' });

type Item = Record<string, unknown>;

/** Legacy items seeded per pipeline, and each pipeline's vector dimension (the sweep samples one vector per pipeline). */
const LEGACY = { docs: { items: 31, dims: 384 }, kb: { items: 7, dims: 768 } } as const;
const LEGACY_COUNT = LEGACY.docs.items + LEGACY.kb.items;

/**
 * A runs table as an upgraded stack has it: the per-chunk index's CHUNK items (the shape the
 * adapter wrote before commit 93fbc34), beside what the current code reads and writes: a
 * run and its units, a capacity lease, a prompt-cache answer, the index's DOC items (one
 * with fingerprints, one written before they were kept, one whose document id looks like a
 * chunk key).
 */
async function seededTable(): Promise<string> {
  const tableName = await dynalite.newTable();
  const doc = dynalite.doc;
  const { run, units } = aRunWithUnits(2);
  await new DynamoRunStore({ doc, tableName }).createRun(run, units);
  await new DynamoCapacityLeases({ doc, tableName }).take({
    runId: run.runId,
    component: 'sluice-embed-model',
    copies: 1,
    takenAt: run.startedAt,
  });
  await new DynamoPromptCache({ doc, tableName }).record('triage', [
    {
      promptSha256: 'a'.repeat(64),
      model: 'm',
      output: 'yes',
      outputJson: null,
      finishReason: 'stop',
      attempts: 1,
      promptTokens: 10,
      completionTokens: 1,
      runId: run.runId,
    },
  ]);
  await new DynamoChunkIndex({ doc, tableName }).record('docs', [aDoc('a', 2), aDoc('CHUNK#1', 1)]);
  await doc.send(
    new PutCommand({ TableName: tableName, Item: { pk: 'DOC#docs#old', sk: 'DOC', chunkCount: 3 } }),
  );
  for (const [pipeline, { items, dims }] of Object.entries(LEGACY))
    for (let i = 0; i < items; i += 1) {
      const vector = Float32Array.from({ length: dims }, (_, d) => Math.sin(i + d));
      await doc.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            pk: `CHUNK#${pipeline}#d${i}:0`,
            sk: 'CHUNK',
            sha: i.toString(16).padStart(64, '0'),
            vec: new Uint8Array(vector.buffer),
            runId: run.runId,
          },
        }),
      );
    }
  return tableName;
}

/** Every item of the table, by key. */
async function itemsOf(tableName: string): Promise<Map<string, Item>> {
  const out = await dynalite.doc.send(new ScanCommand({ TableName: tableName }));
  return new Map((out.Items ?? []).map((item) => [`${item.pk} ${item.sk}`, item]));
}

const isLegacy = (key: string) => key.startsWith('CHUNK#');

/** The document client with `send` replaced: `intercept` answers a command or passes it on. */
function intercepting(
  intercept: (command: unknown, real: DynamoDBDocumentClient) => Promise<unknown> | undefined,
): { doc: DynamoDBDocumentClient; sent: unknown[] } {
  const real = dynalite.doc;
  const sent: unknown[] = [];
  // An instance of the class, as paginateScan insists on.
  const doc = Object.create(real) as DynamoDBDocumentClient;
  doc.send = ((command: unknown) => {
    sent.push(command);
    return intercept(command, real) ?? real.send(command as ScanCommand);
  }) as DynamoDBDocumentClient['send'];
  return { doc, sent };
}

describe('sweepLegacyChunkItems', () => {
  it('deletes exactly the CHUNK# items: runs, units, leases, cached answers and DOC items stay as they were', async () => {
    const tableName = await seededTable();
    const before = await itemsOf(tableName);
    const legacy = [...before].filter(([key]) => isLegacy(key)).map(([, item]) => item);
    expect(legacy).toHaveLength(LEGACY_COUNT);

    const report = await sweepLegacyChunkItems(dynalite.doc, tableName, { dryRun: false });

    const after = await itemsOf(tableName);
    expect([...after.keys()].filter(isLegacy)).toEqual([]);
    expect(after).toEqual(new Map([...before].filter(([key]) => !isLegacy(key))));
    expect([...after.keys()].some((key) => key.startsWith('RUN#'))).toBe(true);
    expect(after.has('DOC#docs#CHUNK#1 DOC')).toBe(true);
    expect(report).toMatchObject({
      table: tableName,
      scanned: before.size,
      deleted: LEGACY_COUNT,
      byPipeline: { docs: LEGACY.docs.items, kb: LEGACY.kb.items },
    });
    // Sized as DynamoDB counts the whole items (their vectors too) though only keys, sha and runId were read.
    const sizes = legacy.map((item) => dynamoItemBytes(item));
    expect(report.bytes).toBe(sizes.reduce((sum, b) => sum + b + 100, 0));
    expect(report.writeUnits).toBe(sizes.reduce((sum, b) => sum + writeRequestUnits(b), 0));
    expect(report.readUnits).toBeGreaterThan(0);
    expect(report.usd?.region).toBe('us-east-1');
    expect(report.usd?.storagePerMonth).toBeCloseTo((report.bytes / 1024 ** 3) * 0.25, 12);
  });

  it('on a dry run counts and sizes the same items and deletes nothing', async () => {
    const tableName = await seededTable();
    const before = await itemsOf(tableName);
    const { doc, sent } = intercepting(() => undefined);

    const dry = await sweepLegacyChunkItems(doc, tableName, { dryRun: true });

    expect(await itemsOf(tableName)).toEqual(before);
    expect(sent.filter((c) => c instanceof BatchWriteCommand)).toEqual([]);
    const wet = await sweepLegacyChunkItems(dynalite.doc, tableName, { dryRun: false });
    expect(dry.deleted).toBe(LEGACY_COUNT);
    expect(dry).toEqual(wet);
  });

  it('reads the table over many Scan pages and deletes 25 a call', async () => {
    const tableName = await seededTable();
    const total = (await itemsOf(tableName)).size;
    const { doc, sent } = intercepting(() => undefined);

    const report = await sweepLegacyChunkItems(doc, tableName, { dryRun: false, pageSize: 4 });

    expect(sent.filter((c) => c instanceof ScanCommand).length).toBeGreaterThanOrEqual(Math.ceil(total / 4));
    const writes = sent.filter((c): c is BatchWriteCommand => c instanceof BatchWriteCommand);
    expect(writes.map((c) => c.input.RequestItems?.[tableName]?.length)).toEqual([25, LEGACY_COUNT - 25]);
    expect(report).toMatchObject({ scanned: total, deleted: LEGACY_COUNT });
    expect([...(await itemsOf(tableName)).keys()].filter(isLegacy)).toEqual([]);
  });

  it('resends the deletes DynamoDB leaves unprocessed, after a backoff', async () => {
    const tableName = await seededTable();
    let throttled = 2;
    const { doc, sent } = intercepting((command, real) => {
      if (!(command instanceof BatchWriteCommand) || throttled === 0) return undefined;
      throttled -= 1;
      // DynamoDB takes the first five and hands the rest back.
      const requests = command.input.RequestItems?.[tableName] ?? [];
      return real.send(new BatchWriteCommand({ RequestItems: { [tableName]: requests.slice(0, 5) } })).then(
        (): BatchWriteCommandOutput => ({
          UnprocessedItems: { [tableName]: requests.slice(5) },
          $metadata: {},
        }),
      );
    });
    const sleep = vi.fn(async () => {});

    const report = await sweepLegacyChunkItems(doc, tableName, { dryRun: false, resend: { sleep } });

    expect(report.deleted).toBe(LEGACY_COUNT);
    expect([...(await itemsOf(tableName)).keys()].filter(isLegacy)).toEqual([]);
    expect(sleep).toHaveBeenCalledTimes(2);
    const writes = sent.filter((c): c is BatchWriteCommand => c instanceof BatchWriteCommand);
    expect(writes.map((c) => c.input.RequestItems?.[tableName]?.length)).toEqual([
      25,
      20,
      15,
      LEGACY_COUNT - 25,
    ]);
  });

  it('fails in one line naming the way out when DynamoDB keeps leaving deletes unprocessed', async () => {
    const tableName = await seededTable();
    const { doc } = intercepting((command) =>
      command instanceof BatchWriteCommand
        ? Promise.resolve({ UnprocessedItems: command.input.RequestItems, $metadata: {} })
        : undefined,
    );
    const sweep = sweepLegacyChunkItems(doc, tableName, {
      dryRun: false,
      resend: { maxAttempts: 2, sleep: async () => {} },
    });
    await expect(sweep).rejects.toThrow(BatchIncomplete);
    await expect(sweep).rejects.toThrow(
      /DynamoDB left 25 legacy chunk index items undeleted \(run sluice gc --deployed --legacy-chunk-items again\) in .* after 2 attempts/,
    );
  });
});

/** Athena and S3 answer from mocks (no finalized runs, so no parts); DynamoDB is dynalite, reached from the environment. */
describe('sluice gc --deployed --legacy-chunk-items', () => {
  const athenaMock = mockClient(AthenaClient);
  const s3Mock = mockClient(S3Client);
  const AWS_VARS = [
    'AWS_ENDPOINT_URL_DYNAMODB',
    'AWS_REGION',
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'SLUICE_RUNS_TABLE',
    'SLUICE_RECOMMENDATIONS_TABLE',
  ] as const;
  const saved = new Map<string, string | undefined>();

  beforeAll(() => {
    for (const name of AWS_VARS) saved.set(name, process.env[name]);
    const config = localClientConfig(dynalite.endpoint);
    process.env.AWS_ENDPOINT_URL_DYNAMODB = dynalite.endpoint;
    process.env.AWS_REGION = config.region;
    process.env.AWS_ACCESS_KEY_ID = config.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = config.credentials.secretAccessKey;
    delete process.env.SLUICE_RUNS_TABLE;
    delete process.env.SLUICE_RECOMMENDATIONS_TABLE;
  });
  afterAll(() => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    athenaMock.restore();
    s3Mock.restore();
  });
  beforeEach(() => {
    athenaMock.on(GetWorkGroupCommand).resolves({
      WorkGroup: {
        Name: 'sluice',
        Configuration: { ResultConfiguration: { OutputLocation: 's3://sluice-data/athena-results/' } },
      },
    });
    athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q' });
    athenaMock.on(GetQueryExecutionCommand).resolves({
      QueryExecution: {
        QueryExecutionId: 'q',
        StatementType: 'DML',
        Status: { State: 'SUCCEEDED' },
        Statistics: { DataScannedInBytes: 1024 },
      },
    });
    athenaMock.on(GetQueryResultsCommand).resolves({
      ResultSet: { ResultSetMetadata: { ColumnInfo: [] }, Rows: [{ Data: [] }] },
    });
    s3Mock.on(ListObjectsV2Command).resolves({ Contents: [] });
    s3Mock.on(DeleteObjectsCommand).resolves({});
  });
  afterEach(() => {
    athenaMock.reset();
    s3Mock.reset();
  });

  it('previews with --dry-run: the count, size, storage a month and what the Scan and deletes cost, deleting nothing', async () => {
    const tableName = await seededTable();
    const before = await itemsOf(tableName);

    const result = await sluice(
      'gc',
      '--deployed',
      '--legacy-chunk-items',
      '--runs-table',
      tableName,
      '--dry-run',
    );

    expect(result.code).toBe(0);
    const line = result.out.find((l) => l.startsWith(`runs table ${tableName}:`));
    expect(line).toMatch(
      new RegExp(
        `^runs table ${tableName}: would delete ${LEGACY_COUNT} of ${before.size} items, the old per-chunk index's CHUNK# items, no longer read \\(docs 31, kb 7\\), about [\\d.]+ KB: \\$[\\d.e-]+ a month of storage; the Scan read [\\d.]+ read units \\(\\$[\\d.e-]+\\), the deletes would take about \\d+ write units \\(\\$[\\d.e-]+\\) in us-east-1$`,
      ),
    );
    expect(result.out.at(-1)).toContain('dry run: nothing deleted');
    expect(await itemsOf(tableName)).toEqual(before);
  });

  it('deletes them with the runs table from SLUICE_RUNS_TABLE, reported in --json', async () => {
    const tableName = await seededTable();
    process.env.SLUICE_RUNS_TABLE = tableName;
    try {
      const result = await sluice('gc', '--deployed', '--legacy-chunk-items', '--json');
      expect(result.code).toBe(0);
      expect(result.json<DeployedGcReport>().legacyChunkItems).toMatchObject({
        table: tableName,
        deleted: LEGACY_COUNT,
      });
    } finally {
      delete process.env.SLUICE_RUNS_TABLE;
    }
    expect([...(await itemsOf(tableName)).keys()].filter(isLegacy)).toEqual([]);
  });

  it('leaves the runs table unread without the flag, even when the table is named', async () => {
    const tableName = await seededTable();
    const before = await itemsOf(tableName);
    const result = await sluice('gc', '--deployed', '--runs-table', tableName, '--json');
    expect(result.code).toBe(0);
    expect(result.json<DeployedGcReport>().legacyChunkItems).toBeUndefined();
    expect(await itemsOf(tableName)).toEqual(before);
  });

  it('refuses the flag in one line without a runs table (before any query) or without --deployed', async () => {
    const unnamed = await sluice('gc', '--deployed', '--legacy-chunk-items');
    expect(unnamed.code).toBe(2);
    expect(unnamed.err).toHaveLength(1);
    expect(unnamed.err[0]).toContain('--runs-table NAME or SLUICE_RUNS_TABLE=NAME');
    expect(athenaMock.calls()).toHaveLength(0);

    const local = await sluice('gc', '--legacy-chunk-items');
    expect(local.code).toBe(2);
    expect(local.err[0]).toContain('--legacy-chunk-items needs --deployed');
  });
});
