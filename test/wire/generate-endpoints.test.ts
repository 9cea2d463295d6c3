import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeModelArgs } from '../../cli/commands/serve-model.ts';
import { RulesChatBackend, type RulesChatOptions } from '../../cli/model-server/rules-chat-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerChatEndpoint } from '../../shared/adapters/aws/sagemaker-chat-endpoint.ts';
import { sageMakerClientSettings } from '../../shared/adapters/aws/sagemaker-invoker.ts';
import { chatCompletionsUrl, OpenAiChatEndpoint } from '../../shared/adapters/http/openai-chat-endpoint.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { AdaptiveLimiter } from '../../shared/endpoint/adaptive-limiter.ts';
import { ModelError } from '../../shared/errors/errors.ts';
import { parseChatCompletionBody } from '../../shared/jobs/generate/chat-contract.ts';
import type { ChatEndpoint } from '../../shared/jobs/generate/chat-endpoint.ts';
import { generateJobFor } from '../../shared/jobs/generate/generate-stage.ts';
import { generateUnit } from '../../shared/jobs/generate/generate-unit.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';

const noSleep = async () => {};
const stats = (): CallStats => ({ endpointCalls: 0, throttled: 0, retries: 0 });

function body(user: string, maxTokens = 128): string {
  return JSON.stringify({
    model: 'ignored',
    messages: [
      { role: 'system', content: 'Triage the ticket. Answer with JSON only.' },
      { role: 'user', content: user },
    ],
    max_tokens: maxTokens,
    temperature: 0,
    top_p: 1,
  });
}

let server: ModelServer | undefined;
let client: SageMakerRuntimeClient | undefined;
afterEach(async () => {
  client?.destroy();
  client = undefined;
  await server?.close();
  server = undefined;
});

async function serve(options: RulesChatOptions = {}): Promise<ModelServer> {
  server = await startModelServer({ backend: new RulesChatBackend(options) });
  return server;
}

/** The real SageMaker runtime client, pointed at the local server's runtime route. */
function sageMaker(url: string, options: { limiter?: AdaptiveLimiter } = {}): SageMakerChatEndpoint {
  client = new SageMakerRuntimeClient({
    endpoint: url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...sageMakerClientSettings({ requestTimeoutMs: 30_000, maxSockets: 50 }),
  });
  return new SageMakerChatEndpoint({
    client,
    endpointName: 'sluice-triage',
    maxRetries: 8,
    timeoutMs: 30_000,
    sleep: noSleep,
    ...options,
  });
}

function http(url: string): OpenAiChatEndpoint {
  return new OpenAiChatEndpoint({ url, maxRetries: 8, timeoutMs: 30_000, sleep: noSleep });
}

describe('the rules-chat backend over the chat completions contract', () => {
  for (const [name, endpointOf] of [
    ['SageMaker InvokeEndpoint (real client)', sageMaker],
    ['HTTP /v1/chat/completions', http],
  ] as const) {
    it(`answers a triage prompt with JSON, finish_reason and usage: ${name}`, async () => {
      const { url } = await serve();
      const endpoint: ChatEndpoint = endpointOf(url);
      const s = stats();
      const answer = parseChatCompletionBody(
        await endpoint.complete(body('Ticket 1: Checkout down\nThe checkout is down for everyone.'), 100, s),
      );
      expect(JSON.parse(answer.content)).toEqual({
        priority: 'high',
        category: 'bug',
        summary: 'The checkout is down for everyone.',
      });
      expect(answer.finishReason).toBe('stop');
      expect(answer.usage!.promptTokens).toBeGreaterThan(10);
      expect(answer.usage!.completionTokens).toBeGreaterThan(5);
      expect(s).toEqual({ endpointCalls: 1, throttled: 0, retries: 0 });
    });

    it(`cuts an answer at max_tokens with finish_reason "length": ${name}`, async () => {
      const { url } = await serve();
      const answer = parseChatCompletionBody(
        await endpointOf(url).complete(body('Ticket [[long]]', 16), 30, stats()),
      );
      expect(answer.finishReason).toBe('length');
      expect(answer.usage!.completionTokens).toBe(16);
    });

    it(`retries throttled requests and counts them: ${name}`, async () => {
      const { url } = await serve({ throttleRate: 0.5 });
      const endpoint = endpointOf(url);
      const s = stats();
      for (let i = 0; i < 6; i++) await endpoint.complete(body(`Ticket ${i}: question`), 50, s);
      // Every other request is refused: 6 answers took 11 calls, 5 of them throttled and retried.
      expect(s).toEqual({ endpointCalls: 11, throttled: 5, retries: 5 });
    });

    it(`throws ModelError at once for a request the server refuses: ${name}`, async () => {
      const { url } = await serve();
      const s = stats();
      const refused = endpointOf(url).complete('{"messages": []}', 1, s);
      await expect(refused).rejects.toBeInstanceOf(ModelError);
      await expect(refused).rejects.toThrow('"messages" must be a non-empty array');
      expect(s).toEqual({ endpointCalls: 1, throttled: 0, retries: 0 });
    });
  }

  it('serves the route a base URL, a /v1 URL or the full route names', () => {
    expect(chatCompletionsUrl('http://127.0.0.1:8000')).toBe('http://127.0.0.1:8000/v1/chat/completions');
    expect(chatCompletionsUrl('http://127.0.0.1:8000/v1/')).toBe('http://127.0.0.1:8000/v1/chat/completions');
    expect(chatCompletionsUrl('http://h/v1/chat/completions')).toBe('http://h/v1/chat/completions');
  });

  it('is served by sluice serve-model --backend rules-chat, with its fault flags', async () => {
    const settings = await parseServeModelArgs(['--backend', 'rules-chat', '--throttle-rate', '0.5']);
    expect(settings.backend).toBeInstanceOf(RulesChatBackend);
    expect(settings.backend.description).toContain('50% of requests throttled');
    await expect(parseServeModelArgs(['--invalid-json-rate', '0.1'])).rejects.toThrow(
      '--invalid-json-rate and --throttle-rate are for --backend rules-chat',
    );
    await expect(parseServeModelArgs(['--backend', 'rules-chat', '--throttle-rate', '2'])).rejects.toThrow(
      '--throttle-rate must be a number from 0 to 1, got "2"',
    );
  });

  it('says it is not a language model', async () => {
    const { url } = await serve();
    const answer = JSON.parse(await http(url).complete(body('Ticket'), 10, stats()));
    expect(answer.system_fingerprint).toContain('not a language model');
    expect(new RulesChatBackend().description).toContain('NOT a language model');
  });
});

describe('a generate unit against the local backend through the real SageMaker client', () => {
  it('ends every record valid or rejected when 10% of JSON answers are broken', async () => {
    const { url } = await serve({ invalidJsonRate: 0.1, throttleRate: 0.05 });
    const limiter = new AdaptiveLimiter({ initialLimit: 4, maxLimit: 16 });
    const endpoint = sageMaker(url, { limiter });
    const config = parsePipelineConfig({
      name: 'triage',
      kind: 'generate',
      model: 'm',
      input: { format: 'jsonl' },
      prompt: { system: 'Answer with JSON only.', user: 'Ticket {{ id }}\n{{ text }}' },
      output: {
        jsonSchema: {
          type: 'object',
          properties: {
            priority: { enum: ['low', 'normal', 'high'] },
            category: { type: 'string' },
            summary: { type: 'string' },
          },
          required: ['priority', 'category', 'summary'],
        },
        maxRepairs: 2,
      },
      endpoint: { concurrency: 16 },
    }) as GeneratePipelineConfig;
    const store = new MemoryObjectStore();
    const texts = [
      'The app crashes on start',
      'How do I export? Thanks',
      'I was charged twice',
      'Sync is slow',
    ];
    const lines = Array.from({ length: 400 }, (_, i) =>
      JSON.stringify({ id: `t${i}`, text: `${texts[i % 4]} (${i})` }),
    );
    const source = `${lines.join('\n')}\n`;
    store.objects.set('incoming/triage/t.jsonl', new TextEncoder().encode(source));
    const rows: unknown[] = [];
    const { counts, rejects } = await generateUnit(
      { store, endpoint },
      config,
      generateJobFor(config),
      {
        runId: 'r-20261207T100000Z-aaaaaa',
        unitId: 'u0000',
        pipeline: 'triage',
        sourceKey: 'incoming/triage/t.jsonl',
        byteStart: 0,
        byteEnd: Buffer.byteLength(source),
        firstLine: 1,
        format: 'jsonl',
        compression: 'none',
        packed: [],
        estCost: 1,
      },
      { add: (r) => void rows.push(...r) },
    );
    expect(counts.records).toBe(400);
    expect(counts.generated + rejects.length).toBe(400);
    // 10% broken per attempt, an independent draw per repair: about 0.1% stay broken after 2 repairs.
    expect(counts.generated).toBeGreaterThanOrEqual(396);
    expect(counts.throttled).toBeGreaterThan(0);
    for (const reject of rejects)
      expect(reject.reason).toMatch(/^invalid JSON output after 3 attempts: answer is not JSON/);
    // Calls: one per record, plus one per repair (about 10% of records, 1% twice).
    expect(counts.endpointCalls - counts.throttled).toBeGreaterThan(400);
    expect(counts.endpointCalls - counts.throttled).toBeLessThan(480);
  });
});
