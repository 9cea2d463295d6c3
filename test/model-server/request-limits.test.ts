import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeModelArgs } from '../../cli/commands/serve-model.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { DEFAULT_REQUEST_LIMITS, type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { XgboostJsonBackend } from '../../cli/model-server/xgboost-backend.ts';
import { parseEmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { MAX_INVOKE_PAYLOAD_BYTES } from '../../shared/endpoint/payload-limit.ts';

const post = (url: string, body: string, contentType = 'application/json') =>
  fetch(url, { method: 'POST', body, headers: { 'content-type': contentType } });

const errorOf = async (response: Response) => ((await response.json()) as { error: string }).error;

const inputs = (count: number, text = 'x') =>
  JSON.stringify({ inputs: Array.from({ length: count }, () => text) });

/** The body: about 6 MB of one-character inputs (1.57M of them), under the body limit. */
function hostileBody(): string {
  const count = Math.floor((MAX_INVOKE_PAYLOAD_BYTES - 32) / 4);
  return inputs(count, 'a');
}

describe('model server request limits', () => {
  let server: ModelServer;
  let small: ModelServer;
  beforeAll(async () => {
    server = await startModelServer({ backend: new HashEmbedder(384) });
    small = await startModelServer({
      backend: new HashEmbedder(16),
      limits: { maxInputs: 4, maxChars: 100 },
    });
  });
  afterAll(async () => {
    await server?.close();
    await small?.close();
  });

  it('refuses more inputs than max-client-batch-size with TEI 413 Validation, the limit in the message', async () => {
    const refused = await post(`${server.url}/embed`, inputs(1025));
    expect(refused.status).toBe(413);
    expect(await refused.json()).toEqual({
      error: 'batch size 1025 > maximum allowed batch size 1024 (--max-client-batch-size)',
      error_type: 'Validation',
    });
    const served = await post(`${server.url}/embed`, inputs(1024));
    expect(served.status).toBe(200);
    expect(await served.json()).toHaveLength(1024);
  });

  it('answers the same refusal on the SageMaker route as SageMaker relays it (424 ModelError, original 413)', async () => {
    const refused = await post(`${server.url}/endpoints/e/invocations`, inputs(1025));
    expect(refused.status).toBe(424);
    expect(refused.headers.get('x-amzn-errortype')).toBe('ModelError:');
    expect(await refused.json()).toMatchObject({
      OriginalStatusCode: 413,
      OriginalMessage: expect.stringContaining('maximum allowed batch size 1024'),
    });
  });

  it('caps the characters of a request and takes the limits it is given', async () => {
    const chars = await post(`${small.url}/embed`, inputs(2, 'y'.repeat(60)));
    expect(chars.status).toBe(413);
    expect(await errorOf(chars)).toBe(
      'batch has 120 characters > maximum allowed 100 characters (--max-batch-chars)',
    );
    expect((await post(`${small.url}/embed`, inputs(5))).status).toBe(413);
    expect((await post(`${small.url}/embed`, inputs(4, 'y'.repeat(25)))).status).toBe(200);
  });

  it('does not count escaped quotes inside inputs as inputs', async () => {
    const quoted = await post(`${small.url}/embed`, inputs(4, '"q" '.repeat(6)));
    expect(quoted.status).toBe(200);
  });

  it('caps the rows of a text/csv request', async () => {
    const csv = await startModelServer({
      backend: XgboostJsonBackend.fromFile('events/fixtures/xgboost/binary/model.json'),
      limits: { maxRows: 3 },
    });
    try {
      const rows = readFileSync('events/fixtures/xgboost/binary/rows.csv', 'utf8')
        .split('\n')
        .filter(Boolean);
      const refused = await post(`${csv.url}/invocations`, `${rows.slice(0, 4).join('\n')}\n\n`, 'text/csv');
      expect(refused.status).toBe(413);
      expect(await errorOf(refused)).toBe(
        'batch of 4 rows > maximum allowed 3 rows (--max-client-batch-size)',
      );
      const served = await post(`${csv.url}/invocations`, `${rows.slice(0, 3).join('\n')}\n`, 'text/csv');
      expect(served.status).toBe(200);
    } finally {
      await csv.close();
    }
  });

  it('refuses a body over the byte limit with 413 before reading it', async () => {
    const refused = await post(
      `${server.url}/embed`,
      `{"inputs":["${'z'.repeat(MAX_INVOKE_PAYLOAD_BYTES)}"]}`,
    );
    expect(refused.status).toBe(413);
    expect(await errorOf(refused)).toContain(`limit of ${MAX_INVOKE_PAYLOAD_BYTES} bytes`);
  });

  it('has defaults no pipeline request reaches', () => {
    expect(DEFAULT_REQUEST_LIMITS).toEqual({
      maxInputs: 1024,
      maxRows: 100_000,
      maxChars: MAX_INVOKE_PAYLOAD_BYTES,
      maxBodyBytes: MAX_INVOKE_PAYLOAD_BYTES,
    });
    const embed = { name: 'p', kind: 'embed', endpoint: { name: 'e' } };
    expect(() => parseEmbedPipelineConfig({ ...embed, batching: { maxBatchSize: 1024 } })).not.toThrow();
    expect(() => parseEmbedPipelineConfig({ ...embed, batching: { maxBatchSize: 1025 } })).toThrow();
  });

  it('reads the limits from serve-model flags and refuses bad ones', async () => {
    expect((await parseServeModelArgs([])).limits).toEqual(DEFAULT_REQUEST_LIMITS);
    const settings = await parseServeModelArgs([
      '--max-client-batch-size',
      '32',
      '--max-batch-chars',
      '65536',
      '--max-body-bytes',
      '1048576',
    ]);
    expect(settings.limits).toEqual({ maxInputs: 32, maxRows: 32, maxChars: 65536, maxBodyBytes: 1_048_576 });
    await expect(parseServeModelArgs(['--max-client-batch-size', '0'])).rejects.toThrow(
      '--max-client-batch-size must be an integer from 1 to 1000000, got "0"',
    );
    await expect(parseServeModelArgs(['--max-body-bytes', '7000000'])).rejects.toThrow(
      '--max-body-bytes must be an integer from 1024 to 6291456',
    );
  });
});

describe('sluice serve-model under a hostile request', () => {
  let child: ChildProcess;
  let url: string;
  beforeAll(async () => {
    child = spawn(
      process.execPath,
      ['bin/sluice.js', 'serve-model', '--port', '0', '--backend', 'hash-embed'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    const lines = createInterface({ input: child.stdout! });
    for await (const line of lines) {
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) {
        url = match[1]!;
        break;
      }
    }
  }, 60_000);
  afterAll(() => {
    child?.kill();
  });

  /** Peak resident memory of the server process, from /proc (Linux), in MiB. */
  const peakRssMiB = (): number | undefined => {
    const file = `/proc/${child.pid}/status`;
    if (!existsSync(file)) return undefined;
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(file, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  };

  it('refuses 6 MB of 1.57M one-character inputs at once with 413, stays small and keeps answering', async () => {
    const body = hostileBody();
    expect(body.length).toBeLessThanOrEqual(MAX_INVOKE_PAYLOAD_BYTES);
    for (const route of ['/embed', '/endpoints/e/invocations', '/invocations']) {
      const started = Date.now();
      const refused = await post(`${url}${route}`, body);
      const text = await refused.text();
      expect(refused.status, route).toBe(route.startsWith('/endpoints') ? 424 : 413);
      expect(text, route).toContain('maximum allowed batch size 1024');
      expect(Date.now() - started, route).toBeLessThan(5_000);
    }
    const ping = await fetch(`${url}/ping`);
    expect(ping.status).toBe(200);
    const ok = await post(`${url}/embed`, inputs(32, 'still serving'));
    expect(ok.status).toBe(200);
    const peak = peakRssMiB();
    // Before the limits this body took the server past 2.5 GB without an answer.
    if (peak !== undefined) {
      console.log(`serve-model peak RSS after the hostile requests: ${peak.toFixed(0)} MiB`);
      expect(peak).toBeLessThan(250);
    }
  }, 60_000);
});
