/**
 * Writes the sample inputs in events/data/ deterministically (seeded), so anyone can
 * regenerate them: `npx tsx events/generate-samples.ts`.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** mulberry32: a small seeded PRNG, so the samples are the same on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOPICS = {
  storage: [
    'object storage',
    'bucket policy',
    'lifecycle rule',
    'multipart upload',
    'versioned object',
    'access log',
  ],
  queues: [
    'message queue',
    'visibility timeout',
    'dead-letter queue',
    'batch window',
    'receive count',
    'long polling',
  ],
  models: [
    'embedding model',
    'token budget',
    'GPU endpoint',
    'batch size',
    'sequence length',
    'attention layer',
  ],
  analytics: [
    'partition projection',
    'columnar file',
    'query engine',
    'row group',
    'predicate pushdown',
    'table schema',
  ],
};
const VERBS = ['reduces', 'controls', 'depends on', 'improves', 'limits', 'changes', 'protects', 'measures'];
const OBJECTS = [
  'the cost of a run',
  'throughput under load',
  'how retries behave',
  'the size of each unit',
  'padding waste',
  'the latency of a request',
  'what users see in the results',
];

function sentence(rand: () => number, topic: keyof typeof TOPICS): string {
  const terms = TOPICS[topic];
  const a = terms[Math.floor(rand() * terms.length)]!;
  const verb = VERBS[Math.floor(rand() * VERBS.length)]!;
  const obj = OBJECTS[Math.floor(rand() * OBJECTS.length)]!;
  const s = `The ${a} ${verb} ${obj}`;
  return rand() < 0.3 ? `${s}, which matters when inputs are skewed.` : `${s}.`;
}

export function sampleDocuments(
  count: number,
  seed = 42,
): { id: string; title: string; source: string; text: string }[] {
  const rand = seededRandom(seed);
  const topics = Object.keys(TOPICS) as (keyof typeof TOPICS)[];
  return Array.from({ length: count }, (_, i) => {
    const topic = topics[i % topics.length]!;
    // Log-normal sentence counts: most documents are short, a few are long.
    const gaussian = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const sentences = Math.max(1, Math.min(400, Math.round(Math.exp(2.2 + 1.1 * gaussian))));
    const paragraphs: string[] = [];
    let paragraph: string[] = [];
    for (let s = 0; s < sentences; s += 1) {
      paragraph.push(sentence(rand, topic));
      if (paragraph.length >= 4 + Math.floor(rand() * 4)) {
        paragraphs.push(paragraph.join(' '));
        paragraph = [];
      }
    }
    if (paragraph.length) paragraphs.push(paragraph.join(' '));
    return {
      id: `doc-${String(i + 1).padStart(4, '0')}`,
      title: `Notes on ${topic} #${i + 1}`,
      source: topic,
      text: paragraphs.join('\n\n'),
    };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const docs = sampleDocuments(300);
  writeFileSync(
    path.join(here, 'data', 'docs-sample.jsonl'),
    `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`,
  );
  const good = sampleDocuments(6, 7);
  const bad = [
    JSON.stringify(good[0]),
    '{"id": "broken-1", "text": "an unterminated string}',
    JSON.stringify(good[1]),
    '["an", "array", "is not a record"]',
    JSON.stringify({ id: 'no-text', title: 'a record without its text field' }),
    JSON.stringify({ id: 'numeric-text', text: 42 }),
    JSON.stringify({ id: 'blank-text', text: '   ' }),
    '',
    JSON.stringify(good[2]),
    'plain words where JSON was expected',
    JSON.stringify({ text: 'a record without an id gets <source key>:<line> as its id' }),
    JSON.stringify({ id: { nested: true }, text: 'an id must be a string or a number' }),
    JSON.stringify(good[3]),
  ];
  writeFileSync(path.join(here, 'data', 'docs-bad-lines.jsonl'), `${bad.join('\n')}\n`);
  console.log(`wrote ${docs.length} sample documents and ${bad.length} lines with bad records on purpose`);
}
