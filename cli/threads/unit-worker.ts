// The SDK's Node-version warning, dropped in this thread as the CLI entry drops it.
import '../../bin/quiet-sdk-warning.js';
import { parentPort, workerData } from 'node:worker_threads';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { errorData, RpcClient } from '../../shared/adapters/local/thread-rpc.ts';
import type { ChunkIndex } from '../../shared/ports/chunk-index.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { versionsDirOf } from '../home.ts';
import { localUnitDeps } from './unit-deps.ts';
import type { UnitRequest, UnitThreadData, UnitThreadReply } from './unit-threads.ts';

/**
 * A worker thread of `sluice run`: runs units with its own object store, endpoint client
 * and token counter (as one Lambda worker does), and reaches the run store, chunk index
 * and queue, which every unit shares, on the main thread.
 */
function startUnitWorker(data: UnitThreadData): void {
  const port = parentPort;
  if (!port) throw new Error('unit-worker.ts runs as a worker thread');
  const client = new RpcClient(data.rpc);
  const deps = localUnitDeps({
    store: new FsObjectStore(data.bucketDir, versionsDirOf(data.bucketDir)),
    runs: client.proxy<RunStore>('runs'),
    queue: client.proxy<WorkQueue>('queue'),
    chunkIndex: client.proxy<ChunkIndex>('chunkIndex'),
    config: data.config,
    endpointUrl: data.endpointUrl,
  });
  port.on('message', (request: UnitRequest) => {
    processUnit(deps, data.config, request.unit, request.options).then(
      (outcome) => port.postMessage({ id: request.id, ok: true, outcome } satisfies UnitThreadReply),
      (error: unknown) =>
        port.postMessage({ id: request.id, ok: false, error: errorData(error) } satisfies UnitThreadReply),
    );
  });
  port.postMessage('ready');
}

if (parentPort && workerData?.kind === 'sluice-unit-worker') startUnitWorker(workerData as UnitThreadData);
