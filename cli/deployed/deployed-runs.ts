import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';

/** What `sluice status` reads: the same four calls locally and deployed. */
export type RunReader = Pick<RunStore, 'listRuns' | 'getRun' | 'listUnits' | 'getSummary'>;

let defaultDoc: DynamoDBDocumentClient | undefined;

/**
 * (primary adapter: CLI) -> the deployed runs table, read through the same DynamoRunStore
 * the functions write with: GetItem for a run and its summary, Query on the `byStartedAt`
 * index for the list, Query on the run's partition for its units. It only reads.
 */
export function deployedRunReader(tableName: string, doc?: DynamoDBDocumentClient): RunReader {
  return deployedRunStore(tableName, doc);
}

/**
 * The deployed runs table as the whole RunStore port, for core code typed on the port
 * (the run report's loader). The CLI calls only its reads on it.
 */
export function deployedRunStore(tableName: string, doc?: DynamoDBDocumentClient): RunStore {
  defaultDoc ??= DynamoDBDocumentClient.from(new DynamoDBClient({}));
  return new DynamoRunStore({ doc: doc ?? defaultDoc, tableName });
}
