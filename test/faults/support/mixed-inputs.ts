import { gzipSync } from 'node:zlib';

/** mulberry32: a small seeded PRNG, so every fault run is reproducible from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface InputFile {
  readonly key: string;
  readonly body: Uint8Array;
}

/** What the run must produce: every good record by doc id, every bad one by `<key>:<line>`. */
export interface MixedInputs {
  readonly files: InputFile[];
  /** doc id -> the key of the file that holds it. */
  readonly good: Map<string, string>;
  /** `<key>:<line>` -> a fragment of the reason its reject must give. */
  readonly bad: Map<string, string>;
}

const WORDS = (
  'queue bucket unit worker token budget chunk overlap endpoint throttle retry backoff parquet ' +
  'partition schema record reject summary finalize plan skew median shard visibility lease ' +
  'café naïve Zürich 東京 données'
).split(' ');

const BAD_JSONL: readonly (readonly [string, string])[] = [
  ['{"id": "cut", "text": "an unterminated string}', 'malformed JSON'],
  ['["an", "array"]', 'not a JSON object (got array)'],
  ['42', 'not a JSON object (got number)'],
  ['{"id":"no-text","title":"no text field"}', 'missing text field "text"'],
  ['{"id":"blank","text":"   "}', 'text field "text" is empty'],
  ['{"id":{"nested":true},"text":"an object as id"}', 'id field "id" must be a string or a number'],
  ['plain words where JSON was expected', 'malformed JSON'],
];

/**
 * A seeded drop of mixed inputs for one run: one JSONL file big enough to be split into
 * several units (with bad lines of every kind and records without an id), a CSV with a
 * quoted newline and a ragged row, a few small JSONL files that are packed together, a
 * gzipped JSONL and a plain-text document.
 */
export function mixedInputs(seed: number, options: { prefix: string; splitRecords?: number }): MixedInputs {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const sentence = (words: number) => Array.from({ length: words }, () => pick(WORDS)).join(' ');
  const files: InputFile[] = [];
  const good = new Map<string, string>();
  const bad = new Map<string, string>();
  const encoder = new TextEncoder();
  let docs = 0;
  const docId = () => `s${seed}-d${String(docs++).padStart(4, '0')}`;

  const jsonlFile = (key: string, records: number, badRate: number) => {
    const lines: string[] = [];
    for (let i = 0; i < records; i++) {
      if (random() < badRate) {
        const [line, reason] = pick(BAD_JSONL);
        lines.push(line);
        bad.set(`${key}:${lines.length}`, reason);
        continue;
      }
      if (random() < 0.04) lines.push(''); // a blank line is not a record
      const words = random() < 0.15 ? 60 + Math.floor(random() * 90) : 3 + Math.floor(random() * 30);
      const withoutId = random() < 0.05;
      const id = withoutId ? undefined : docId();
      lines.push(JSON.stringify({ ...(id === undefined ? {} : { id }), text: sentence(words), n: i }));
      good.set(id ?? `${key}:${lines.length}`, key);
    }
    return `${lines.join('\n')}\n`;
  };

  const split = `${options.prefix}big-${seed}.jsonl`;
  files.push({ key: split, body: encoder.encode(jsonlFile(split, options.splitRecords ?? 90, 0.08)) });

  const csv = `${options.prefix}table-${seed}.csv`;
  const csvLines = ['id,text,title'];
  const csvRows = 8 + Math.floor(random() * 12);
  for (let i = 0; i < csvRows; i++) {
    const line = csvLines.length + 1;
    if (i === 3) {
      csvLines.push(`${docId()},only two fields`);
      bad.set(`${csv}:${line}`, 'CSV row has 2 fields, the header has 3');
      continue;
    }
    const id = docId();
    const quoted = i === 5;
    csvLines.push(
      quoted
        ? `${id},"${sentence(6)}, with a comma\nand a newline inside quotes","t${i}"`
        : `${id},${sentence(4 + Math.floor(random() * 20))},t${i}`,
    );
    good.set(id, csv);
  }
  files.push({ key: csv, body: encoder.encode(`${csvLines.join('\n')}\n`) });

  const smallFiles = 2 + Math.floor(random() * 3);
  for (let f = 0; f < smallFiles; f++) {
    const key = `${options.prefix}small/${seed}-${f} part.jsonl`;
    files.push({ key, body: encoder.encode(jsonlFile(key, 2 + Math.floor(random() * 6), 0.1)) });
  }

  const gz = `${options.prefix}packed-${seed}.jsonl.gz`;
  files.push({ key: gz, body: gzipSync(Buffer.from(jsonlFile(gz, 6, 0.15))) });

  const text = `${options.prefix}notes-${seed}.txt`;
  files.push({ key: text, body: encoder.encode(`${sentence(40)}\n\n${sentence(25)}\n`) });
  good.set(text, text);

  return { files, good, bad };
}
