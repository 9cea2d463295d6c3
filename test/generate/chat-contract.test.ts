import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ChatMessage,
  ChatResponseInvalid,
  canonicalJson,
  chatCallOver,
  chatRequestOf,
  type GenerationParams,
  parseChatCompletion,
  parseChatCompletionBody,
  promptFingerprint,
} from '../../shared/jobs/generate/chat-contract.ts';

const messages: ChatMessage[] = [
  { role: 'system', content: 'You triage support tickets.' },
  { role: 'user', content: 'Ticket: the app crashes on login.' },
];
const params: GenerationParams = { maxTokens: 256, temperature: 0, topP: 1, stop: [] };

/** A response as TGI's Messages API / LMI return it (fields we ignore included). */
function completion(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1765090000,
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    system_fingerprint: '3.0.1-sha',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: '{"priority":"high"}' },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 31, completion_tokens: 7, total_tokens: 38 },
    ...overrides,
  };
}

describe('chatRequestOf', () => {
  it('builds the OpenAI-compatible body with snake_case parameters', () => {
    expect(chatRequestOf(messages, 'llama', { ...params, stop: ['\n\n'], seed: 7 })).toEqual({
      model: 'llama',
      messages,
      max_tokens: 256,
      temperature: 0,
      top_p: 1,
      stop: ['\n\n'],
      seed: 7,
    });
  });

  it('leaves out an empty stop list and an unset seed', () => {
    const body = chatRequestOf(messages, 'llama', params);
    expect(body).not.toHaveProperty('stop');
    expect(body).not.toHaveProperty('seed');
  });
});

describe('parseChatCompletion', () => {
  it('reads content, finish_reason and usage from the first choice', () => {
    expect(parseChatCompletion(completion())).toEqual({
      content: '{"priority":"high"}',
      finishReason: 'stop',
      usage: { promptTokens: 31, completionTokens: 7 },
    });
  });

  it('accepts a server that sends no usage and no finish_reason', () => {
    const answer = parseChatCompletion(
      completion({ usage: undefined, choices: [{ message: { content: 'hi' } }] }),
    );
    expect(answer).toEqual({ content: 'hi', finishReason: null, usage: undefined });
  });

  it('names the field in one line when content is null', () => {
    const body = completion({ choices: [{ message: { content: null }, finish_reason: 'stop' }] });
    expect(() => parseChatCompletion(body)).toThrow(ChatResponseInvalid);
    expect(() => parseChatCompletion(body)).toThrow(
      'chat completion response: choices.0.message.content: no text content (null or missing)',
    );
  });

  it('rejects a response with no choices', () => {
    expect(() => parseChatCompletion(completion({ choices: [] }))).toThrow(
      'chat completion response: choices: no choices',
    );
  });

  it('rejects a TGI generate-style body (not chat completions)', () => {
    expect(() => parseChatCompletion([{ generated_text: 'x' }])).toThrow(/^chat completion response: /);
  });

  it('rejects negative token counts', () => {
    const body = completion({ usage: { prompt_tokens: -1, completion_tokens: 1 } });
    expect(() => parseChatCompletion(body)).toThrow(/usage\.prompt_tokens/);
  });

  it('says a body that is not JSON is not JSON, quoting its start', () => {
    expect(() => parseChatCompletionBody('<html>502 Bad Gateway</html>')).toThrow(
      'chat completion response is not JSON: "<html>502 Bad Gateway</html>"',
    );
    expect(parseChatCompletionBody(JSON.stringify(completion())).content).toBe('{"priority":"high"}');
  });
});

describe('promptFingerprint', () => {
  it('is a sha256 hex digest, stable for equal inputs', () => {
    const a = promptFingerprint(messages, 'llama', params);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(
      promptFingerprint(
        messages.map((m) => ({ ...m })),
        'llama',
        { ...params },
      ),
    ).toBe(a);
  });

  it('does not depend on the key order of the parameters', () => {
    const reordered = { stop: [], topP: 1, temperature: 0, maxTokens: 256 } as GenerationParams;
    expect(promptFingerprint(messages, 'llama', reordered)).toBe(
      promptFingerprint(messages, 'llama', params),
    );
  });

  it('changes with any message, the model or any parameter', () => {
    const base = promptFingerprint(messages, 'llama', params);
    const variants = [
      promptFingerprint([messages[0]!, { role: 'user', content: 'Ticket: other' }], 'llama', params),
      promptFingerprint([messages[1]!], 'llama', params),
      promptFingerprint(messages, 'mistral', params),
      promptFingerprint(messages, 'llama', { ...params, maxTokens: 257 }),
      promptFingerprint(messages, 'llama', { ...params, temperature: 0.1 }),
      promptFingerprint(messages, 'llama', { ...params, topP: 0.9 }),
      promptFingerprint(messages, 'llama', { ...params, stop: ['x'] }),
      promptFingerprint(messages, 'llama', { ...params, seed: 1 }),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });

  it('keeps message boundaries: moving text between messages changes the fingerprint', () => {
    const a: ChatMessage[] = [
      { role: 'system', content: 'ab' },
      { role: 'user', content: 'c' },
    ];
    const b: ChatMessage[] = [
      { role: 'system', content: 'a' },
      { role: 'user', content: 'bc' },
    ];
    expect(promptFingerprint(a, 'm', params)).not.toBe(promptFingerprint(b, 'm', params));
  });
});

describe('canonicalJson', () => {
  it('gives the same text for objects that differ only in key order', () => {
    const shuffled = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(shuffled);
      if (value !== null && typeof value === 'object') {
        const entries = Object.entries(value).reverse();
        return Object.fromEntries(entries.map(([k, v]) => [k, shuffled(v)]));
      }
      return value;
    };
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(shuffled(value))).toBe(canonicalJson(value));
        expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it('keeps a member named __proto__', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":1}}'))).toBe('{"__proto__":{"x":1},"b":1}');
  });

  it('sorts keys at every depth and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe('chatCallOver', () => {
  it('posts the wire body built from the model and parameters and parses the answer', async () => {
    const posted: unknown[] = [];
    const call = chatCallOver(
      async (body) => {
        posted.push(JSON.parse(body));
        return JSON.stringify(completion());
      },
      'llama',
      { ...params, seed: 3 },
    );
    const answer = await call(messages);
    expect(posted).toEqual([
      { model: 'llama', messages, max_tokens: 256, temperature: 0, top_p: 1, seed: 3 },
    ]);
    expect(answer.content).toBe('{"priority":"high"}');
  });

  it('throws ChatResponseInvalid for a body that is not a chat completion', async () => {
    const call = chatCallOver(async () => '{"generated_text":"x"}', 'llama', params);
    await expect(call(messages)).rejects.toThrow(ChatResponseInvalid);
  });

  it('lets a transport error through unchanged', async () => {
    const failure = new Error('ThrottlingException');
    const call = chatCallOver(async () => Promise.reject(failure), 'llama', params);
    await expect(call(messages)).rejects.toBe(failure);
  });
});
