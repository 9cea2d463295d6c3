import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { readLines } from '../../shared/readers/line-reader.ts';

async function linesOfRange(store: MemoryObjectStore, key: string, start: number, end: number) {
  const streamOffset = start > 0 ? start - 1 : 0;
  const out: { offset: number; text: string }[] = [];
  for await (const line of readLines(store.readRange(key, streamOffset), {
    streamOffset,
    start,
    end,
    maxLineBytes: 1 << 20,
  })) {
    out.push({ offset: line.offset, text: line.bytes.toString('utf8') });
  }
  return out;
}

describe('readLines', () => {
  it('gives every line to exactly one range, for any lines and any cut points', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ maxLength: 40 }).map((s) => s.replace(/[\n\r]/g, ' ')),
          { minLength: 1, maxLength: 40 },
        ),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 1, max: 17 }),
        async (lines, trailingNewline, rawCuts, chunkSize) => {
          const text = lines.join('\n') + (trailingNewline ? '\n' : '');
          const bytes = Buffer.from(text);
          const store = new MemoryObjectStore(chunkSize);
          await store.put('f.jsonl', bytes);
          const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const bounds = [0, ...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length];
          const seen: { offset: number; text: string }[] = [];
          for (let i = 0; i + 1 < bounds.length; i += 1)
            seen.push(...(await linesOfRange(store, 'f.jsonl', bounds[i]!, bounds[i + 1]!)));
          const whole = await linesOfRange(store, 'f.jsonl', 0, bytes.length);
          expect(seen).toEqual(whole);
          // The lines of a text: split at newlines, without the empty rest after a final newline.
          const expected = text.split('\n');
          if (expected.at(-1) === '') expected.pop();
          expect(whole.map((l) => l.text)).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('strips a CR before the newline', async () => {
    const store = new MemoryObjectStore();
    await store.put('f', 'a\r\nb\r\n');
    expect((await linesOfRange(store, 'f', 0, 6)).map((l) => l.text)).toEqual(['a', 'b']);
  });

  it('truncates a line over the limit instead of buffering it whole', async () => {
    const store = new MemoryObjectStore(8);
    await store.put('f', `${'x'.repeat(100)}\nok\n`);
    const lines = [];
    for await (const line of readLines(store.readRange('f', 0), {
      streamOffset: 0,
      start: 0,
      end: 200,
      maxLineBytes: 10,
    }))
      lines.push(line);
    expect(lines[0]).toMatchObject({ truncated: true, length: 100 });
    expect(lines[0]!.bytes.length).toBeLessThanOrEqual(11);
    expect(lines[1]).toMatchObject({ truncated: false, offset: 101 });
    expect(lines[1]!.bytes.toString()).toBe('ok');
  });
});
