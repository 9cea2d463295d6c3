/**
 * What one delivery of a unit used, kept with the unit's counts so finalize can price the
 * run. Plain numbers only (it is stored in DynamoDB and in the local run store).
 */
export interface UnitUsage {
  /** Wall time of the delivery in the worker, ms (what Lambda bills, less its init). */
  workerMs: number;
  /** Memory the worker had, MiB. */
  memoryMiB: number;
  /** Epoch ms of the first endpoint call's start and the last call's end; 0 without calls. */
  endpointFirstAt: number;
  endpointLastAt: number;
  /** Sum of the endpoint calls' durations, ms (calls in flight together add up). */
  endpointCallMs: number;
  /** Endpoint calls made (absent in usage stored before issue 14). */
  endpointCalls?: number;
  /** Bytes of the endpoint requests' bodies (inputs or CSV rows), what serverless bills as data in. */
  endpointBytes?: number;
  s3Gets: number;
  s3Puts: number;
  bytesPut: number;
  queueSends: number;
  runStoreReads: number;
  runStoreWrites: number;
}
