/**
 * Generate saturation benchmark (issue 18): how close the generate client gets to a
 * continuous-batching LLM server's best throughput, against fixed concurrency 1 and 64.
 *
 * The server is simulated on 127.0.0.1 and spoken to over HTTP by the real
 * OpenAiChatEndpoint (the `--endpoint-url` adapter) with its adaptive limiter, as a worker
 * does. Simulation: up to KV_SLOTS sequences decode together, one token each per step of
 * `STEP_MS_FIXED + STEP_MS_PER_SEQUENCE x batch` ms (so throughput rises with requests in
 * flight until the KV cache is full, and latency grows with output tokens and batch size);
 * up to QUEUE more requests wait for a slot; beyond that the server answers 429, as vLLM's
 * and TGI's admission control do.
 *
 * Standalone: `node --import tsx bench/generate-saturation.ts`.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OpenAiChatEndpoint } from '../shared/adapters/http/openai-chat-endpoint.ts';
import { AdaptiveLimiter } from '../shared/endpoint/adaptive-limiter.ts';
import { chatLimiterOptions } from '../shared/jobs/generate/chat-endpoint.ts';
import type { CallStats } from '../shared/ports/embedding-endpoint.ts';
import { mapWithConcurrency } from '../shared/work/concurrency.ts';

const KV_SLOTS = 48;
/** Records per run: enough that the limiter's climb from its initial limit is a small part of it. */
const RECORDS = 3000;
const QUEUE = 8;
const STEP_MS_FIXED = 6;
const STEP_MS_PER_SEQUENCE = 0.12;
const TARGET = { fractionOfBest: 0.9, throttledShare: 0.02 };

interface Sequence {
  remaining: number;
  done: () => void;
}

/** A continuous-batching server: one decode step at a time over every admitted sequence. */
class ContinuousBatchingServer {
  private readonly active: Sequence[] = [];
  private readonly waiting: Sequence[] = [];
  private stepping = false;
  throttled = 0;
  served = 0;
  tokens = 0;

  /** Resolves when `tokens` are generated; undefined when the server refuses it (429). */
  submit(tokens: number): Promise<void> | undefined {
    if (this.active.length + this.waiting.length >= KV_SLOTS + QUEUE) {
      this.throttled += 1;
      return undefined;
    }
    return new Promise<void>((done) => {
      const sequence = { remaining: tokens, done };
      if (this.active.length < KV_SLOTS) this.active.push(sequence);
      else this.waiting.push(sequence);
      if (!this.stepping) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.stepping = true;
    while (this.active.length > 0) {
      const batch = this.active.length;
      await new Promise((r) => setTimeout(r, STEP_MS_FIXED + STEP_MS_PER_SEQUENCE * batch));
      for (let i = this.active.length - 1; i >= 0; i--) {
        const sequence = this.active[i]!;
        sequence.remaining -= 1;
        this.tokens += 1;
        if (sequence.remaining > 0) continue;
        this.active.splice(i, 1);
        this.served += 1;
        sequence.done();
      }
      while (this.active.length < KV_SLOTS && this.waiting.length > 0)
        this.active.push(this.waiting.shift()!);
    }
    this.stepping = false;
  }
}

/** The simulated server behind the OpenAI chat completions route; the prompt says how many tokens to generate. */
async function serve(sim: ContinuousBatchingServer): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      const tokens = Number(/tokens: (\d+)/.exec(body.messages.at(-1).content)?.[1] ?? 50);
      const admitted = sim.submit(tokens);
      if (!admitted) {
        res.writeHead(429, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'the server is at its KV cache capacity' } }));
        return;
      }
      void admitted.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            choices: [
              { message: { role: 'assistant', content: 'x '.repeat(tokens) }, finish_reason: 'stop' },
            ],
            usage: { prompt_tokens: 20, completion_tokens: tokens },
          }),
        );
      });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Output tokens of record `i`: 40 to 80. */
const tokensOf = (i: number): number => 40 + ((i * 7) % 41);

async function measure(client: string, records: number, inFlight: number, limiter?: AdaptiveLimiter) {
  const sim = new ContinuousBatchingServer();
  const { url, server } = await serve(sim);
  const endpoint = new OpenAiChatEndpoint({
    url,
    maxRetries: 10,
    timeoutMs: 60_000,
    ...(limiter && { limiter }),
  });
  const stats: CallStats = { endpointCalls: 0, throttled: 0, retries: 0 };
  /** Records still throttled after every retry: a worker would fail its unit. */
  let failedRecords = 0;
  const started = performance.now();
  try {
    await mapWithConcurrency(
      Array.from({ length: records }, (_, i) => i),
      inFlight,
      (i) =>
        endpoint
          .complete(
            JSON.stringify({
              model: 'sim',
              messages: [{ role: 'user', content: `tokens: ${tokensOf(i)}` }],
              max_tokens: 128,
            }),
            128,
            stats,
          )
          .then(
            () => {},
            () => {
              failedRecords += 1;
            },
          ),
    );
  } finally {
    server.closeAllConnections();
    server.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    client,
    records,
    seconds: Number(seconds.toFixed(2)),
    completionTokensPerSecond: Math.round(sim.tokens / seconds),
    calls: stats.endpointCalls,
    throttledShare: Number((stats.throttled / Math.max(1, stats.endpointCalls)).toFixed(4)),
    failedRecords,
    ...(limiter && {
      limiter: (({ limit, peakLimit, lowestLimit, backoffs }) => ({
        limit,
        peakLimit,
        lowestLimit,
        backoffs,
      }))(limiter.stats()),
    }),
  };
}

export async function runGenerateSaturationBench() {
  const theoretical = Math.round((KV_SLOTS / (STEP_MS_FIXED + STEP_MS_PER_SEQUENCE * KV_SLOTS)) * 1000);
  // The server's best as measured on this machine: exactly its KV slots in flight.
  const best = await measure(`fixed ${KV_SLOTS} (the server's best)`, RECORDS, KV_SLOTS);
  // The limiter a generate worker builds for the default endpoint settings (initial 8, max 64).
  const chatOptions = chatLimiterOptions({ initialConcurrency: 8, concurrency: 64 });
  const adaptive = await measure(
    'adaptive (the generate defaults: initial 8, max 64, slow start)',
    RECORDS,
    64,
    new AdaptiveLimiter(chatOptions),
  );
  // The same limiter without slow start (additive climb from 8), as before it was added.
  const additive = await measure(
    'adaptive without slow start (additive climb from 8)',
    RECORDS,
    64,
    new AdaptiveLimiter({ ...chatOptions, slowStart: false }),
  );
  const fixed64 = await measure('fixed 64', RECORDS, 64);
  const fixed1 = await measure('fixed 1', 40, 1);
  const fraction = (r: { completionTokensPerSecond: number }) =>
    Number((r.completionTokensPerSecond / best.completionTokensPerSecond).toFixed(3));
  return {
    name: 'generate-saturation',
    server: {
      kvSlots: KV_SLOTS,
      queue: QUEUE,
      stepMs: `${STEP_MS_FIXED} + ${STEP_MS_PER_SEQUENCE} x batch`,
      theoreticalTokensPerSecond: theoretical,
    },
    target: TARGET,
    runs: [best, adaptive, additive, fixed64, fixed1].map((r) => ({ ...r, fractionOfBest: fraction(r) })),
    met:
      fraction(adaptive) >= TARGET.fractionOfBest &&
      adaptive.throttledShare <= TARGET.throttledShare &&
      adaptive.failedRecords === 0,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const result = await runGenerateSaturationBench();
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'generate-saturation.json');
  writeFileSync(out, `${JSON.stringify({ ...result, measuredAt: new Date().toISOString() }, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}
