import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { chunkIndexContract } from '../contract/chunk-index-contract.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-chunks' });

chunkIndexContract('DynamoChunkIndex on dynalite', async () => ({
  index: new DynamoChunkIndex({ doc: dynalite.doc, tableName: await dynalite.newTable() }),
  cleanup: async () => {},
}));
