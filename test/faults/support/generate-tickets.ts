import { expect } from 'vitest';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../../../shared/config/pipeline-config.ts';
import type { ObjectStore } from '../../../shared/ports/object-store.ts';
import type { FaultJob } from './fault-harness.ts';
import { type InputFile, type MixedInputs, seededRandom } from './mixed-inputs.ts';

export const GENERATE_FAULT_PIPELINE = 'faults-generate';

/** The ticket-triage pipeline of the generate fault runs: a JSON Schema, two repairs, four requests in flight. */
export function generateFaultConfig(): GeneratePipelineConfig {
  return parsePipelineConfig({
    name: GENERATE_FAULT_PIPELINE,
    kind: 'generate',
    model: 'sluice-rules-chat-v1',
    input: { format: 'jsonl', idField: 'id', metadataFields: ['tier'] },
    prompt: {
      system: 'You triage support tickets for {{ product }}.',
      user: 'Answer with JSON only. Ticket {{ id }}: {{ subject }}\n{{ text }}',
    },
    generation: { maxTokens: 64, temperature: 0, seed: 7 },
    output: {
      jsonSchema: {
        type: 'object',
        properties: {
          priority: { enum: ['low', 'normal', 'high'] },
          category: { enum: ['billing', 'account', 'bug', 'other'] },
          summary: { type: 'string' },
        },
        required: ['priority', 'category', 'summary'],
        additionalProperties: false,
      },
      maxRepairs: 2,
    },
    endpoint: {
      name: 'faults-chat',
      concurrency: 4,
      initialConcurrency: 4,
      maxRetries: 5,
      timeoutMs: 10_000,
    },
    // 64 tokens a record (its max_tokens): about 40 records a unit.
    planning: { targetUnitTokens: 2_560 },
    workers: { maxConcurrency: 4, maxReceiveCount: 5 },
    // The drop mixes in bad records on purpose; these runs judge accounting, not the reject share.
    run: { toleratedRejectPercent: 100 },
  }) as GeneratePipelineConfig;
}

const WORDS = (
  'sync error login password invoice refund charge crash outage slow export report team ' +
  'billing account laptop mobile urgent question thanks données Zürich 東京'
).split(' ');

/** Tickets whose every answer the rules-chat backend breaks: they end in `rejects` after the last repair. */
export const ALWAYS_INVALID_MARKER = '[[invalid-json]]';

export interface TicketOptions {
  readonly prefix: string;
  /** Tickets of the file that is split into units. @default 240 */
  readonly splitRecords?: number;
  /** Share of good tickets that carry {@link ALWAYS_INVALID_MARKER}. @default 0 */
  readonly alwaysInvalidShare?: number;
}

/** A drop of tickets; `good` holds every ticket that can be asked, `alwaysInvalid` those that carry the marker. */
export interface TicketInputs extends MixedInputs {
  readonly alwaysInvalid: Set<string>;
}

/**
 * A seeded drop of tickets: one JSONL file big enough to be cut into several units and a
 * small one, with bad records among them: tickets without a `subject` (a field the
 * template needs) and lines that are not JSON. Every prompt is distinct (the id is in it).
 */
export function ticketInputs(seed: number, options: TicketOptions): TicketInputs {
  const random = seededRandom(seed);
  const pick = () => WORDS[Math.floor(random() * WORDS.length)]!;
  const sentence = (n: number) => Array.from({ length: n }, pick).join(' ');
  const files: InputFile[] = [];
  const good = new Map<string, string>();
  const bad = new Map<string, string>();
  const alwaysInvalid = new Set<string>();
  let tickets = 0;
  const file = (key: string, records: number) => {
    const lines: string[] = [];
    for (let i = 0; i < records; i++) {
      const id = `g${seed}-${String(tickets++).padStart(4, '0')}`;
      const ticket = {
        id,
        product: random() < 0.5 ? 'Sluice Cloud' : 'Sluice Desktop',
        tier: random() < 0.3 ? 'enterprise' : 'free',
        subject: sentence(2 + Math.floor(random() * 4)),
        text: sentence(4 + Math.floor(random() * 20)),
      };
      const roll = random();
      if (roll < 0.06) {
        const { subject: _s, ...withoutSubject } = ticket;
        lines.push(JSON.stringify(withoutSubject));
        bad.set(`${key}:${lines.length}`, 'missing template field "subject"');
      } else if (roll < 0.08) {
        lines.push(`{"id": "${id}", "text": "cut short`);
        bad.set(`${key}:${lines.length}`, 'malformed JSON');
      } else {
        // Drawn only when asked for, so runs without the marker keep their seeded tickets.
        const share = options.alwaysInvalidShare ?? 0;
        if (share > 0 && random() < share) {
          ticket.text = `${ticket.text} ${ALWAYS_INVALID_MARKER}`;
          alwaysInvalid.add(id);
        }
        lines.push(JSON.stringify(ticket));
        good.set(id, key);
      }
    }
    files.push({ key, body: new TextEncoder().encode(`${lines.join('\n')}\n`) });
  };
  file(`${options.prefix}tickets-${seed}.jsonl`, options.splitRecords ?? 240);
  file(`${options.prefix}more-${seed}.jsonl`, 24);
  return { files, good, bad, alwaysInvalid };
}

export const GENERATE_FAULT_JOB: FaultJob = {
  config: generateFaultConfig,
  resultTable: 'generations',
  inputs: ticketInputs,
};

/** Fingerprint -> entry of the pipeline's prompt cache, read object by object; each fingerprint once. */
export async function promptCacheOf(
  store: ObjectStore,
): Promise<Map<string, { output: string; runId: string; attempts: number }>> {
  const entries = new Map<string, { output: string; runId: string; attempts: number }>();
  for await (const { key } of store.list(`cache/prompts/${GENERATE_FAULT_PIPELINE}/`)) {
    const fingerprint = /([0-9a-f]{64})\.json$/.exec(key)?.[1];
    expect(fingerprint, `cache key ${key}`).toBeDefined();
    const body = await store.get(key);
    const entry = JSON.parse(new TextDecoder().decode(body)) as {
      output: string;
      runId: string;
      attempts: number;
    };
    expect(entries.has(fingerprint!), `cache entry ${fingerprint} once`).toBe(false);
    entries.set(fingerprint!, entry);
  }
  return entries;
}
