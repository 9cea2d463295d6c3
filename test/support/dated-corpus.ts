import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, vi } from 'vitest';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from './cli.ts';

const DAY_MS = 86_400_000;
/** The first run's day; the others are days after it (the clock, hence the run ids, faked). */
const T0 = Date.parse('2026-11-02T01:00:00Z');

/**
 * A local home and one JSONL file of generated documents, run through the CLI on faked
 * days, for tests of what the chunk index and gc do over a history. Call it inside a
 * `describe`: it registers the hooks that make the folder and put the clock back.
 */
export function datedCorpus(options: {
  readonly prefix: string;
  readonly documents: number;
  readonly seed: number;
}) {
  const docs = sampleDocuments(options.documents, options.seed);
  const ids = docs.map((d) => d.id);
  const at = { work: '', home: '', file: '' };

  beforeAll(async () => {
    at.work = await mkdtemp(path.join(tmpdir(), options.prefix));
    at.home = path.join(at.work, 'home');
    at.file = path.join(at.work, 'docs.jsonl');
    await writeFile(at.file, jsonl(docs));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(at.work, { recursive: true, force: true }));

  /** Fakes the clock to `day` days after the first run's. */
  const onDay = (day: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
  };
  /** `sluice run` of the file with the docs pipeline on `day`; its summary. */
  const runOn = async <Summary>(day: number): Promise<Summary> => {
    onDay(day);
    const result = await sluice('run', at.file, '--pipeline', 'docs', '--home', at.home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<Summary>();
  };
  /** The runs the documents' entries point at (`none` for an entry without chunks). */
  const entryRuns = async (options: { readonly all?: boolean } = {}): Promise<Set<string>> => {
    const index = new LocalChunkIndex(path.join(at.home, 'state', 'chunk-index'));
    try {
      const found = await index.lookupDocs('docs', ids);
      if (options.all) expect(found.size).toBe(ids.length);
      return new Set([...found.values()].map((d) => d.chunks?.at.runId ?? 'none'));
    } finally {
      await index.close();
    }
  };
  return {
    docs,
    ids,
    /** The folder, home and file (set once the hooks ran). */
    at: at as Readonly<typeof at>,
    onDay,
    runOn,
    entryRuns,
  };
}
