import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { classifySource } from '../../shared/plan/plan-units.ts';
import { estimateCosts, windowStarts } from '../../shared/plan/sample-cost.ts';
import { pipelineConfig } from './factories.ts';

describe('windowStarts', () => {
  it('starts with 0, then seeded offsets past the first window, sorted, the same for the same file', () => {
    const file = { key: 'incoming/docs/big.jsonl', size: 1_000_000 };
    const starts = windowStarts(file, 1000, 5);
    expect(starts).toHaveLength(5);
    expect(starts[0]).toBe(0);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    for (const start of starts.slice(1)) {
      expect(start).toBeGreaterThanOrEqual(1000);
      expect(start + 1000).toBeLessThanOrEqual(file.size);
    }
    expect(windowStarts(file, 1000, 5)).toEqual(starts);
    expect(windowStarts({ ...file, size: file.size + 1 }, 1000, 5)).not.toEqual(starts);
  });
});

describe('measuring one file (the steps of measureFile, through estimateCosts)', () => {
  const config = pipelineConfig({ input: { maxRecordBytes: 4000 } as never });
  const line = (i: number) =>
    JSON.stringify({ id: `r${i}`, text: `alpha beta gamma ${i} `.repeat(1 + (i % 5)) });
  const lines = (n: number) => Array.from({ length: n }, (_, i) => line(i)).join('\n');

  async function measure(key: string, body: Buffer | string) {
    const store = new MemoryObjectStore(5);
    await store.put(key, body);
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const [estimate] = await estimateCosts(store, [{ key, size, ...classifySource(key, 'auto') }], config, {
      counter: new EstimatingTokenCounter(),
      windowBytes: 2048,
      windows: 3,
    });
    return estimate!;
  }

  it('reads a file of a few windows whole, and samples a bigger one by its windows', async () => {
    const small = await measure('incoming/docs/small.jsonl', lines(40));
    expect(small).toMatchObject({ method: 'whole', sampledBytes: Buffer.byteLength(lines(40)) });
    const big = await measure('incoming/docs/big.jsonl', lines(2000));
    expect(big).toMatchObject({ method: 'sampled', sampledBytes: 3 * 2048 });
    expect(big.estCost).toBe(Math.round(big.tokensPerByte * Buffer.byteLength(lines(2000))));
  });

  it('prices gzip by its first window decompressed, whole when that is the whole stream', async () => {
    const whole = await measure('incoming/docs/small.jsonl.gz', gzipSync(lines(20)));
    expect(whole.method).toBe('whole');
    const prefix = await measure('incoming/docs/big.jsonl.gz', gzipSync(lines(20_000)));
    expect(prefix).toMatchObject({ method: 'gzip-prefix', sampledBytes: 2048 });
  });

  it('rejects a text document over the record size, plain or as gzip would expand it, and says a CSV may hold quotes', async () => {
    expect(await measure('incoming/docs/long.txt', 'word '.repeat(1000))).toMatchObject({
      method: 'rejected',
      estCost: 0,
      sampledBytes: 0,
    });
    expect(
      await measure(
        'incoming/docs/long.txt.gz',
        gzipSync(Array.from({ length: 20_000 }, (_, i) => `w${i * 7919}`).join(' ')),
      ),
    ).toMatchObject({
      method: 'rejected',
      estCost: 0,
    });
    expect(await measure('incoming/docs/q.csv', 'id,text\n1,"a\nb"\n2,c\n')).toMatchObject({
      method: 'whole',
      maybeQuoted: true,
    });
    expect(await measure('incoming/docs/p.csv', 'id,text\n1,a\n2,c\n')).toMatchObject({ maybeQuoted: false });
  });
});

describe('the records each estimate counts (an embed run’s documents, for `sluice cost`)', () => {
  const config = pipelineConfig({ input: { maxRecordBytes: 4000 } as never });
  const counter = new EstimatingTokenCounter();
  /** Records of one length, so a sample's records per byte is the file's. */
  const line = (i: number) =>
    JSON.stringify({ id: `r${String(i).padStart(5, '0')}`, text: 'alpha beta '.repeat(9) });
  const lines = (n: number) => Array.from({ length: n }, (_, i) => line(i)).join('\n');

  async function estimates(files: Record<string, Buffer | string>, smallFilesSampled = 64) {
    const store = new MemoryObjectStore(5);
    const classified = [];
    for (const [key, body] of Object.entries(files)) {
      await store.put(key, body);
      const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
      classified.push({ key, size, ...classifySource(key, 'auto') });
    }
    return estimateCosts(store, classified, config, {
      counter,
      windowBytes: 2048,
      windows: 3,
      smallFilesSampled,
    });
  }

  it('counts a file read whole, gzip or CSV with quoted newlines, and a text file as one document', async () => {
    const [jsonl, gz, csv, text] = await estimates({
      'incoming/docs/a.jsonl': `${lines(40)}\n\nnot json\n`,
      'incoming/docs/b.jsonl.gz': gzipSync(lines(25)),
      'incoming/docs/c.csv': 'id,text\n1,"a\nb"\n2,c\n3,"d,e"\n',
      'incoming/docs/d.txt': 'one document of words\n'.repeat(100),
    });
    expect(jsonl).toMatchObject({ method: 'whole', estRecords: 40, recordsCounted: true });
    expect(gz).toMatchObject({ method: 'whole', estRecords: 25, recordsCounted: true });
    expect(csv).toMatchObject({ method: 'whole', estRecords: 3, recordsCounted: true });
    expect(text).toMatchObject({ method: 'whole', estRecords: 1, recordsCounted: true });
  });

  it('scales a sampled file’s and a gzip prefix’s records by their records per byte, the tokens unchanged', async () => {
    const body = lines(2000);
    const [big, prefix] = await estimates({
      'incoming/docs/big.jsonl': body,
      'incoming/docs/big.jsonl.gz': gzipSync(lines(20_000)),
    });
    expect(big).toMatchObject({ method: 'sampled', recordsCounted: false });
    expect(big!.estCost).toBe(Math.round(big!.tokensPerByte * Buffer.byteLength(body)));
    expect(big!.estRecords).toBeCloseTo(2000, -1);
    expect(prefix).toMatchObject({ method: 'gzip-prefix', recordsCounted: false });
    // The prefix's decompressed bytes stand for the whole stream (capped by the ratio limit).
    expect(prefix!.estRecords).toBeGreaterThan(0);
  });

  it('prices small files of a kind by the sampled ones’ records per byte, and a fallback counts none', async () => {
    const small: Record<string, string> = {};
    for (let i = 0; i < 10; i += 1) small[`incoming/docs/s${i}.jsonl`] = lines(3);
    const got = await estimates(small, 2);
    expect(got.filter((e) => e.method === 'whole')).toHaveLength(2);
    expect(got.filter((e) => e.method === 'group-ratio')).toHaveLength(8);
    for (const e of got) expect(e.estRecords).toBeCloseTo(3, 6);
    expect(got.find((e) => e.method === 'group-ratio')?.recordsCounted).toBe(false);
    const [broken] = await estimates({ 'incoming/docs/broken.jsonl.gz': Buffer.from('not gzip at all') });
    expect(broken?.method).toBe('fallback');
    expect(broken?.estRecords).toBeUndefined();
  });
});
