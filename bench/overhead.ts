import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { EchoBackend } from '../cli/model-server/echo-backend.ts';
import { startModelServer } from '../cli/model-server/server.ts';
import { sampleDocuments } from '../events/generate-samples.ts';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';
import { asEmbedPipeline } from '../shared/config/pipeline-config.ts';
import type { RunSummary } from '../shared/domain/types.ts';
import { runMeasured } from './memory.ts';

async function writeJsonl(file: string, targetBytes: number): Promise<number> {
  const out = createWriteStream(file);
  let bytes = 0;
  let batch = 0;
  while (bytes < targetBytes) {
    const docs = sampleDocuments(2000, 100 + batch).map((d, i) => ({ ...d, id: `b${batch}-${i}` }));
    const text = `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`;
    bytes += Buffer.byteLength(text);
    if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    batch += 1;
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return bytes;
}

/**
 * Pipeline overhead: `sluice run` (its own process, default threads) end to end against
 * an echo endpoint (no model cost),
 * against DuckDB converting the same JSONL to Parquet in the same process: the practical
 * floor for reading and writing those bytes. Run twice: with 384-dimension vectors (the
 * results a real model gives) and with 4 (the pipeline's own work: reading, chunking,
 * batching, HTTP, Parquet of the text columns).
 */
export async function runOverheadBench(megabytes = 200) {
  const work = await mkdtemp(path.join(tmpdir(), 'sluice-bench-overhead-'));
  try {
    const file = path.join(work, 'docs.jsonl');
    const bytes = await writeJsonl(file, megabytes * 1024 * 1024);

    const duck = await DuckDBInstance.create(':memory:');
    const connection = await duck.connect();
    // The floor is the fastest of three conversions: one slow run must not flatter the ratio.
    let duckSeconds = Number.POSITIVE_INFINITY;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const duckStarted = Date.now();
      await connection.run(
        `COPY (SELECT * FROM read_json_auto('${file}')) TO '${path.join(work, 'floor.parquet')}' (FORMAT parquet)`,
      );
      duckSeconds = Math.min(duckSeconds, (Date.now() - duckStarted) / 1000);
    }
    connection.closeSync();
    duck.closeSync();

    const base = asEmbedPipeline(await loadPipelineConfig('pipelines', 'docs'));
    const runs = [];
    for (const dimension of [4, 384]) {
      // The endpoint lives in this process; `sluice run` is its own process, as users run it.
      const server = await startModelServer({ backend: new EchoBackend(dimension) });
      try {
        const pipelines = path.join(work, `pipelines-${dimension}`);
        await mkdir(pipelines);
        await writeFile(
          path.join(pipelines, 'docs.json'),
          JSON.stringify({
            ...base,
            incremental: { enabled: false },
            endpoint: { ...base.endpoint, dimension },
          }),
        );
        const started = Date.now();
        const result = await runMeasured([
          'bin/sluice.js',
          'run',
          file,
          '--pipeline',
          'docs',
          '--pipelines',
          pipelines,
          '--home',
          path.join(work, `home-${dimension}`),
          '--endpoint-url',
          server.url,
          '--json',
        ]);
        const seconds = (Date.now() - started) / 1000;
        if (result.code !== 0) throw new Error(`sluice run failed: ${result.stderr.slice(-2000)}`);
        const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as RunSummary;
        runs.push({
          dimension,
          seconds,
          megabytesPerSecond: bytes / 2 ** 20 / seconds,
          ratioToFloor: seconds / duckSeconds,
          peakRssMiB: Math.round(result.peakKiB / 102.4) / 10,
          chunks: summary.counts.chunks,
          units: summary.counts.units,
          status: summary.status,
        });
      } finally {
        await server.close();
      }
    }
    return {
      name: 'overhead' as const,
      inputMegabytes: bytes / 2 ** 20,
      floor: {
        description: 'DuckDB read_json_auto -> Parquet, same file, in the bench process: fastest of 3',
        seconds: duckSeconds,
        parquetBytes: (await stat(path.join(work, 'floor.parquet'))).size,
      },
      sluice: runs,
      target: 'ratioToFloor <= 4',
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
