import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvokeEndpointCommand } from '@aws-sdk/client-sagemaker-runtime';
import { DuckDBInstance } from '@duckdb/node-api';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { EchoBackend } from '../cli/model-server/echo-backend.ts';
import { startModelServer } from '../cli/model-server/server.ts';
import { localSageMakerClient } from '../cli/threads/unit-deps.ts';
import { sampleDocuments } from '../events/generate-samples.ts';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';
import { asEmbedPipeline, type PipelineConfig } from '../shared/config/pipeline-config.ts';
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
 * A second floor, in Sluice's own runtime: one Node thread reads the JSONL, parses each
 * line and writes the same four columns to a Parquet file with hyparquet-writer (SNAPPY,
 * row groups of 65,536). It does no chunking, hashing, HTTP or vectors: what reading and
 * writing those bytes costs in JavaScript before the pipeline does anything.
 */
async function nodeConversion(file: string, out: string): Promise<number> {
  const bytes = new ByteWriter();
  const columns = ['id', 'title', 'source', 'text'];
  const writer = new ParquetWriter({
    writer: bytes,
    schema: [
      { name: 'root', num_children: columns.length },
      ...columns.map((name) => ({
        name,
        type: 'BYTE_ARRAY' as const,
        converted_type: 'UTF8' as const,
        repetition_type: 'OPTIONAL' as const,
      })),
    ],
  });
  let rows: Record<string, unknown>[] = [];
  const flush = () => {
    void writer.write({
      columnData: columns.map((name) => ({ name, data: rows.map((row) => row[name] ?? null) })),
      rowGroupSize: rows.length,
    });
    rows = [];
  };
  let rest = '';
  for await (const piece of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const text = rest + (piece as string);
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      if (end > start) rows.push(JSON.parse(text.slice(start, end)) as Record<string, unknown>);
      start = end + 1;
      if (rows.length >= 65_536) flush();
    }
    rest = text.slice(start);
  }
  if (rest.trim()) rows.push(JSON.parse(rest) as Record<string, unknown>);
  if (rows.length > 0) flush();
  writer.finish();
  await writeFile(out, new Uint8Array(bytes.getBuffer()));
  return bytes.offset;
}

/**
 * CPU per endpoint call, the echo server's included (it runs in this process): one
 * InvokeEndpoint through the SageMaker SDK as Sluice calls it (the local run's client:
 * middleware resolved once and cached, SigV4 signing) against the same request body
 * posted with plain `http.request`, and against the SDK resolving its middleware stack on
 * every call (no cache, an abort signal per call: how Sluice called it before). Bodies of
 * 32 inputs of ~500 characters, as the docs pipeline sends; 8 calls in flight; the second
 * of two rounds, so all are warm.
 */
async function perCallCpu(
  pipeline: PipelineConfig,
  calls = 3000,
): Promise<{ sdkMs: number; sdkUncachedMs: number; plainHttpMs: number }> {
  const server = await startModelServer({ backend: new EchoBackend(4) });
  const client = localSageMakerClient(server.url, [pipeline]);
  const uncachedClient = localSageMakerClient(server.url, [pipeline], { cacheMiddleware: false });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  try {
    const inputs = Array.from({ length: 32 }, (_, i) => `document ${i} `.repeat(45));
    const body = new TextEncoder().encode(JSON.stringify({ inputs, truncate: true }));
    const url = new URL(`${server.url}/endpoints/bench/invocations`);
    const plain = () =>
      new Promise<void>((resolve, reject) => {
        const request = http.request(
          {
            hostname: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', 'content-length': body.length },
          },
          (response) => {
            response.on('data', () => {});
            response.on('end', () => resolve());
          },
        );
        request.on('error', reject);
        request.end(body);
      });
    const command = () =>
      new InvokeEndpointCommand({
        EndpointName: 'bench',
        Body: body,
        ContentType: 'application/json',
        Accept: 'application/json',
      });
    const sdk = async () => {
      await client.send(command());
    };
    const sdkUncached = async () => {
      await uncachedClient.send(command(), { abortSignal: new AbortController().signal });
    };
    const cpuPerCall = async (call: () => Promise<void>) => {
      const before = process.cpuUsage();
      let started = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (started++ < calls) await call();
        }),
      );
      const used = process.cpuUsage(before);
      return (used.user + used.system) / 1000 / calls;
    };
    let result = { sdkMs: 0, sdkUncachedMs: 0, plainHttpMs: 0 };
    for (let round = 0; round < 2; round += 1)
      result = {
        plainHttpMs: await cpuPerCall(plain),
        sdkMs: await cpuPerCall(sdk),
        sdkUncachedMs: await cpuPerCall(sdkUncached),
      };
    return result;
  } finally {
    client.destroy();
    uncachedClient.destroy();
    agent.destroy();
    await server.close();
  }
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

    let nodeSeconds = Number.POSITIVE_INFINITY;
    let nodeParquetBytes = 0;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const nodeStarted = Date.now();
      nodeParquetBytes = await nodeConversion(file, path.join(work, 'node-floor.parquet'));
      nodeSeconds = Math.min(nodeSeconds, (Date.now() - nodeStarted) / 1000);
    }

    const base = asEmbedPipeline(await loadPipelineConfig('pipelines', 'docs'));
    const perCall = await perCallCpu(base);
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
        const endpointCalls = summary.stats?.endpointCalls ?? 0;
        // The SDK's CPU alone for this run's calls: a bound no other work in the pipeline
        // can lower, set beside DuckDB's whole conversion.
        const sdkCpuSeconds = (endpointCalls * perCall.sdkMs) / 1000;
        runs.push({
          dimension,
          seconds,
          megabytesPerSecond: bytes / 2 ** 20 / seconds,
          ratioToFloor: seconds / duckSeconds,
          ratioToNodeFloor: seconds / nodeSeconds,
          peakRssMiB: Math.round(result.peakKiB / 102.4) / 10,
          chunks: summary.counts.chunks,
          units: summary.counts.units,
          endpointCalls,
          sdkCpuSeconds,
          sdkCpuRatioToFloor: sdkCpuSeconds / duckSeconds,
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
      nodeFloor: {
        description:
          'one Node thread: read the JSONL, JSON.parse each line, write the same columns with hyparquet-writer: fastest of 3',
        seconds: nodeSeconds,
        parquetBytes: nodeParquetBytes,
      },
      perCallCpu: {
        description:
          'CPU ms per endpoint call (echo server included): InvokeEndpoint through the SDK as Sluice calls it (middleware cached, no per-call options), through the SDK resolving its middleware per call (an abort signal per call, as before), and the same body with plain http.request',
        ...perCall,
      },
      sluice: runs,
      target: 'ratioToFloor <= 4',
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
