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
  /**
   * The longest single endpoint call, ms (absent in usage stored before the run report).
   * Beside `endpointCallMs / endpointCalls` it shows a unit whose calls were slow at times.
   */
  endpointMaxCallMs?: number;
  /**
   * Epoch ms when the delivery started (absent in usage stored before the run report); with
   * `workerMs` it places the unit on the run's timeline (shared/report).
   */
  startedAt?: number;
  /**
   * Which worker ran the delivery: a random number drawn once per process or thread (one
   * Lambda execution environment, one local unit thread), so units of the same worker line
   * up in the run report. Absent in usage stored before the run report.
   */
  worker?: number;
  s3Gets: number;
  s3Puts: number;
  bytesPut: number;
  queueSends: number;
  runStoreReads: number;
  runStoreWrites: number;
  /**
   * DynamoDB request units of the generate prompt cache (runs table, `PROMPT#` items):
   * reads 0.5 per key looked up and per 4 KB of an item found (eventually consistent),
   * writes 1 per KB of each item recorded. Counted as the deployed cache bills them, also
   * in a local run (which keeps its cache in the local bucket). Absent before the cache moved.
   */
  promptCacheReadUnits?: number;
  promptCacheWriteUnits?: number;
  /**
   * DynamoDB request units of the embed chunk index (runs table, one `DOC#` item per
   * document; units stored before the index dropped its vectors also count `CHUNK#` items),
   * by the prompt cache's rule (shared/cost/dynamo-request-units.ts): reads 0.5 per distinct
   * key looked up and not found and per 4 KB of an item found, writes 1 per KB of each item
   * recorded (a document of up to about 50 chunks: 1 unit). Counted as the deployed index
   * bills them, also in a local run (whose index is files). Absent before they were counted.
   */
  chunkIndexReadUnits?: number;
  chunkIndexWriteUnits?: number;
  /**
   * Bytes the delivery's items added to the runs table's billed DynamoDB storage: generate
   * prompt-cache answers and embed chunk-index entries, each new item as DynamoDB sizes it
   * plus its 100 bytes of per-item overhead, a replaced one by its change in size
   * (shared/cost/dynamo-storage.ts): an embed unit's against the entry as it was before the
   * run, so a retry counts what its first delivery added, not its own entries found again.
   * Counted as deployed, also in a local run (whose cache and index are files). Absent before
   * it was counted.
   */
  dynamoBytesAdded?: number;
}
