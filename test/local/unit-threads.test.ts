import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { runLocalPipeline } from '../../cli/local-run.ts';
import { UnitThreads } from '../../cli/threads/unit-threads.ts';
import { RpcClient, serveRpc } from '../../shared/adapters/local/thread-rpc.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { TransitionConflict } from '../../shared/errors/errors.ts';

describe('thread RPC', () => {
  it('calls methods across a channel with Maps and typed arrays, and keeps Sluice error classes', async () => {
    const { port1, port2 } = new MessageChannel();
    const target = {
      factor: 3,
      scale(values: Float32Array) {
        return new Map([['scaled', values.map((v) => v * this.factor)]]);
      },
      async conflict(): Promise<never> {
        throw new TransitionConflict('unit u1 of run r1 does not exist');
      },
      async plain(): Promise<never> {
        throw new RangeError('no such thing');
      },
    };
    serveRpc(port1, { target });
    const proxy = new RpcClient(port2).proxy<typeof target>('target');
    try {
      const result = await proxy.scale(Float32Array.of(1, 2));
      expect(result).toEqual(new Map([['scaled', Float32Array.of(3, 6)]]));
      const conflict = await proxy.conflict().catch((e: unknown) => e);
      expect(conflict).toBeInstanceOf(TransitionConflict);
      expect((conflict as Error).message).toBe('unit u1 of run r1 does not exist');
      const plain = await proxy.plain().catch((e: unknown) => e);
      expect(plain).toMatchObject({ name: 'RangeError', message: 'no such thing' });
      const missing = await (proxy as unknown as { nope(): Promise<void> }).nope().catch((e: unknown) => e);
      expect((missing as Error).message).toBe('no target.nope');
    } finally {
      port1.close();
      port2.close();
    }
  });
});

describe('unit threads', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-threads-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('give the same results as units run on the main thread', async () => {
    const config = await loadPipelineConfig('pipelines', 'docs');
    const tables = async (threads: number) => {
      const home = openHome(path.join(work, `home-${threads}`));
      const { summary } = await runLocalPipeline({
        home,
        config,
        paths: ['events/data/docs-sample.jsonl'],
        log: () => {},
        threads,
      });
      expect(summary.status).toBe('succeeded');
      const rows = [];
      for await (const part of home.store.list('results/embeddings/')) {
        const bytes = await readFile(home.store.pathOf(part.key));
        rows.push(
          ...(await parquetReadObjects({
            file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
            columns: ['chunk_id', 'text_sha256', 'embedding'],
          })),
        );
      }
      return { counts: summary.counts, stats: summary.stats, rows };
    };
    const onMain = await tables(0);
    const onThreads = await tables(2);
    expect(onThreads.counts).toEqual(onMain.counts);
    expect(onThreads.stats.realTokens).toBe(onMain.stats.realTokens);
    expect(onThreads.rows).toEqual(onMain.rows);
    expect(onMain.rows.length).toBe(onMain.counts.chunks);
  });

  it('fail every unit with a clear error when a thread cannot start, instead of waiting forever', async () => {
    const threads = new UnitThreads(
      {
        threads: 1,
        bucketDir: work,
        // No endpoint section: the thread throws while it builds its endpoint client.
        config: { name: 'broken', kind: 'embed' } as never,
        endpointUrl: 'http://127.0.0.1:9',
        shared: {} as never,
        heapMiB: 64,
      },
      1,
    );
    try {
      const unit = { runId: 'r', unitId: 'u1' } as never;
      const first = await threads.run(unit, { isLastAttempt: false }).catch((e: Error) => e);
      expect(String(first)).toMatch(/could not start|cannot start/);
      const again = await threads.run(unit, { isLastAttempt: false }).catch((e: Error) => e);
      expect(String(again)).toMatch(/unit threads cannot start: /);
    } finally {
      await threads.close();
    }
  });
});
