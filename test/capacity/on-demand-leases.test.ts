import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { onDemandLeasesContract } from './on-demand-leases-contract.ts';

// Marshalled as the Lambdas' document client is (functions/config/adapters.ts).
const dynalite = useDynaliteTables({ translateConfig: { marshallOptions: { removeUndefinedValues: true } } });

onDemandLeasesContract('DynamoCapacityLeases on dynalite', async () => ({
  leases: new DynamoCapacityLeases({ doc: dynalite.doc, tableName: await dynalite.newTable() }),
  cleanup: async () => {},
}));

onDemandLeasesContract('LocalCapacityLeases', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-on-demand-leases-'));
  return { leases: new LocalCapacityLeases(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
