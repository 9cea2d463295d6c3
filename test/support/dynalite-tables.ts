import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, type TranslateConfig } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { createRunsTable, type LocalAwsServer, localClientConfig, startDynalite } from './local-aws.ts';

/** The clients of a test file's dynalite, and fresh runs tables in it. */
export interface DynaliteTables {
  /**
   * The server's endpoint (`http://127.0.0.1:<port>`), for code under test that builds its own
   * clients, from its config or the environment (the CLI, a Lambda's adapters).
   */
  readonly endpoint: string;
  /** The low-level client: one attempt per call, so a failure shows at once instead of after retries. */
  readonly client: DynamoDBClient;
  /** The document client over `client`, as the adapters under test take it. */
  readonly doc: DynamoDBDocumentClient;
  /**
   * Creates a new, empty table with the runs table's keys and runs index (`createRunsTable`,
   * the schema the deployed stack builds from `RUNS_TABLE_KEYS`), and returns its name. A table
   * per test keeps tests independent while the file shares one server.
   */
  newTable(): Promise<string>;
}

export interface DynaliteTablesOptions {
  /** Tables are named `<tablePrefix>-<n>`, n counting from 1. @default 'sluice-runs' */
  readonly tablePrefix?: string;
  /**
   * The document client's marshalling, where the adapter is deployed with its own (the
   * Lambdas' client sets `removeUndefinedValues`). @default the SDK's
   */
  readonly translateConfig?: TranslateConfig;
}

/**
 * One dynalite for the calling test file (or `describe`): started on 127.0.0.1 in `beforeAll`,
 * stopped in `afterAll`. Call it at the top level of the file; read `client` and `doc` inside
 * tests and hooks only, as they exist once `beforeAll` has run.
 */
export function useDynaliteTables(options: DynaliteTablesOptions = {}): DynaliteTables {
  const tablePrefix = options.tablePrefix ?? 'sluice-runs';
  let server: LocalAwsServer | undefined;
  let clients: { client: DynamoDBClient; doc: DynamoDBDocumentClient } | undefined;
  let tables = 0;

  beforeAll(async () => {
    server = await startDynalite();
    const client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
    clients = { client, doc: DynamoDBDocumentClient.from(client, options.translateConfig) };
  });

  afterAll(async () => {
    clients?.client.destroy();
    clients = undefined;
    await server?.stop();
    server = undefined;
  });

  const started = () => {
    if (!clients || !server)
      throw new Error('dynalite is not running: use its clients inside tests or hooks');
    return { ...clients, endpoint: server.endpoint };
  };

  return {
    get endpoint() {
      return started().endpoint;
    },
    get client() {
      return started().client;
    },
    get doc() {
      return started().doc;
    },
    async newTable() {
      tables += 1;
      const tableName = `${tablePrefix}-${tables}`;
      await createRunsTable(started().client, tableName);
      return tableName;
    },
  };
}
