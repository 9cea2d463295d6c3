import 'aws-sdk-client-mock-vitest/extend';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  type Row,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { InvokeEndpointCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NothingToSearch, searchDeployedChunks } from '../../cli/commands/search.ts';
import { deployedTarget } from '../../cli/deployed/deployed-target.ts';
import { AthenaQueryFailed } from '../../shared/adapters/aws/athena-query.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { EmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { sluice } from '../support/cli.ts';
import { blobBody } from '../support/sdk-bodies.ts';

const sagemakerMock = mockClient(SageMakerRuntimeClient);
const athenaMock = mockClient(AthenaClient);
const sagemaker = new SageMakerRuntimeClient({ region: 'us-east-1' });
const athena = new AthenaClient({ region: 'us-east-1' });

const row = (...values: string[]): Row => ({ Data: values.map((v) => ({ VarCharValue: v })) });
const COLUMNS = [
  ['doc_id', 'varchar'],
  ['chunk_id', 'varchar'],
  ['chunk_index', 'integer'],
  ['chunk_text', 'varchar'],
  ['source_key', 'varchar'],
  ['run_id', 'varchar'],
  ['model', 'varchar'],
  ['score', 'double'],
].map(([Name, Type]) => ({ Name: Name!, Type: Type! }));

function answerQuery(rows: Row[], state = 'SUCCEEDED'): void {
  athenaMock.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  athenaMock.on(GetQueryExecutionCommand).resolves({
    QueryExecution: {
      QueryExecutionId: 'q-1',
      StatementType: 'DML',
      Status: {
        State: state as 'SUCCEEDED',
        StateChangeReason: state === 'FAILED' ? 'COLUMN_NOT_FOUND: line 3' : undefined,
      },
      Statistics: { DataScannedInBytes: 52_428_800 },
    },
  });
  athenaMock.on(GetQueryResultsCommand).resolves({
    ResultSet: {
      ResultSetMetadata: { ColumnInfo: COLUMNS },
      Rows: [row(...COLUMNS.map((c) => c.Name)), ...rows],
    },
  });
}

describe('sluice search --deployed', () => {
  let config: EmbedPipelineConfig;
  const target = deployedTarget({ stack: 'SluiceDev' }, {});
  const vector = [0.6, -0.8, 0];

  beforeAll(async () => {
    config = (await loadPipelineConfig('pipelines', 'docs')) as EmbedPipelineConfig;
  });
  afterEach(() => {
    sagemakerMock.reset();
    athenaMock.reset();
  });

  it("embeds the text at the stack's endpoint and returns the rows of one Athena query over embeddings_current", async () => {
    sagemakerMock.on(InvokeEndpointCommand).resolves({ Body: blobBody(JSON.stringify([vector])) as never });
    answerQuery([
      row(
        'doc-7',
        'doc-7#0',
        '0',
        'Units are retried.',
        'incoming/docs/a.jsonl',
        'r-2',
        'BAAI/bge-small-en-v1.5',
        '0.91',
      ),
      row(
        'doc-2',
        'doc-2#1',
        '1',
        'Queues hold units.',
        'incoming/docs/a.jsonl',
        'r-2',
        'BAAI/bge-small-en-v1.5',
        '0.52',
      ),
    ]);

    const { results, cost } = await searchDeployedChunks(
      { text: 'how are units retried', config, k: 2, timeoutMs: 10_000 },
      target,
      { sagemaker, athena },
    );

    expect(sagemakerMock).toHaveReceivedCommandTimes(InvokeEndpointCommand, 1);
    expect(sagemakerMock).toHaveReceivedCommandWith(InvokeEndpointCommand, {
      EndpointName: 'sluicedev-sluice-docs-embed',
      InferenceComponentName: expect.stringContaining('sluicedev-sluice-docs-embed'),
    });
    const body = JSON.parse(
      new TextDecoder().decode(
        sagemakerMock.commandCalls(InvokeEndpointCommand)[0]!.args[0].input.Body as Uint8Array,
      ),
    );
    expect(body.inputs).toEqual(['how are units retried']);
    expect(athenaMock).toHaveReceivedCommandWith(StartQueryExecutionCommand, {
      WorkGroup: 'sluicedev',
      QueryExecutionContext: { Database: 'sluicedev', Catalog: 'AwsDataCatalog' },
    });
    const sql = athenaMock.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input.QueryString!;
    expect(sql).toContain('FROM embeddings_current');
    expect(sql).toContain("WHERE pipeline = 'docs' AND cardinality(embedding) = 3");
    expect(sql).toContain('ARRAY[6E-1, -8E-1, 0E0]');
    expect(results).toEqual([
      expect.objectContaining({ rank: 1, docId: 'doc-7', chunkId: 'doc-7#0', chunkIndex: 0, score: 0.91 }),
      expect.objectContaining({ rank: 2, docId: 'doc-2', chunkIndex: 1, text: 'Queues hold units.' }),
    ]);
    expect(cost.bytesScanned).toBe(52_428_800);
  });

  it('says so in one line when the stack has no current chunks of that dimension', async () => {
    sagemakerMock.on(InvokeEndpointCommand).resolves({ Body: blobBody(JSON.stringify([vector])) as never });
    answerQuery([]);
    await expect(
      searchDeployedChunks({ text: 'x', config, k: 5, timeoutMs: 10_000 }, target, { sagemaker, athena }),
    ).rejects.toThrow(
      new NothingToSearch(
        'stack SluiceDev has no current 3-dimensional chunks of pipeline docs in embeddings_current',
      ),
    );
  });

  it("passes on Athena's reason when the query fails", async () => {
    sagemakerMock.on(InvokeEndpointCommand).resolves({ Body: blobBody(JSON.stringify([vector])) as never });
    answerQuery([], 'FAILED');
    const failure = searchDeployedChunks({ text: 'x', config, k: 5, timeoutMs: 10_000 }, target, {
      sagemaker,
      athena,
    });
    await expect(failure).rejects.toBeInstanceOf(AthenaQueryFailed);
    await expect(failure).rejects.toThrow(/COLUMN_NOT_FOUND/);
  });

  it('refuses the local model flags and a bad timeout with one line and exit 2, before calling AWS', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['--model-dir', 'm'],
        /--deployed embeds with the stack's endpoint .*leave out --model-dir, --endpoint-url and --home/,
      ],
      [['--timeout', '0'], /--timeout must be a number of seconds above 0/],
      [['--stack', 'bad name'], /--stack: stack name "bad name" cannot name/],
    ];
    for (const [flags, message] of cases) {
      const result = await sluice('search', 'text', '--pipeline', 'docs', '--deployed', ...flags);
      expect(result.code, flags.join(' ')).toBe(2);
      expect(result.err.at(-1)).toMatch(message);
    }
    expect(sagemakerMock).toHaveReceivedCommandTimes(InvokeEndpointCommand, 0);
    expect(athenaMock).toHaveReceivedCommandTimes(StartQueryExecutionCommand, 0);
  });
});
