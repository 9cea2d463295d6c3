import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openHome } from '../cli/home.ts';
import { runLocalPipeline } from '../cli/local-run.ts';
import { sampleDocuments, seededRandom } from '../events/generate-samples.ts';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';

export interface IncrementalResult {
  readonly name: 'incremental';
  readonly documents: number;
  readonly editedDocuments: number;
  readonly chunks: number;
  readonly firstRun: { embedded: number; endpointCalls: number };
  readonly reRun: {
    embedded: number;
    skippedUnchanged: number;
    removedChunks: number;
    endpointCalls: number;
  };
  /** Share of chunks re-embedded after the edit: the target is <= 0.06 for 5% of documents edited. */
  readonly reEmbeddedShare: number;
  readonly baseline: { description: string; reEmbeddedShare: number };
}

/**
 * Runs the docs pipeline over generated documents, edits 5% of them (one sentence
 * replaced at a random position, so chunks after the edit shift), runs again, and
 * reports the share of chunks embedded again. Baseline: a pipeline without a chunk
 * index re-embeds everything (share 1.0).
 */
export async function runIncrementalBench(documents = 4000, seed = 21): Promise<IncrementalResult> {
  const work = await mkdtemp(path.join(tmpdir(), 'sluice-bench-incr-'));
  try {
    const config = await loadPipelineConfig('pipelines', 'docs');
    const home = openHome(path.join(work, 'home'));
    const file = path.join(work, 'docs.jsonl');
    const docs = sampleDocuments(documents, seed);
    const run = async () => (await runLocalPipeline({ home, config, paths: [file], log: () => {} })).summary;

    await writeFile(file, `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
    const first = await run();

    const rand = seededRandom(seed + 1);
    const edited = new Set<number>();
    while (edited.size < Math.round(documents * 0.05)) edited.add(Math.floor(rand() * documents));
    const changed = docs.map((doc, i) => {
      if (!edited.has(i)) return doc;
      const sentences = doc.text.split('. ');
      const at = Math.floor(rand() * sentences.length);
      sentences[at] = 'This sentence was rewritten by an editor';
      return { ...doc, text: sentences.join('. ') };
    });
    await writeFile(file, `${changed.map((d) => JSON.stringify(d)).join('\n')}\n`);
    const second = await run();

    return {
      name: 'incremental',
      documents,
      editedDocuments: edited.size,
      chunks: second.counts.chunks,
      firstRun: { embedded: first.counts.embedded, endpointCalls: first.stats.endpointCalls },
      reRun: {
        embedded: second.counts.embedded,
        skippedUnchanged: second.counts.skippedUnchanged,
        removedChunks: second.counts.removedChunks,
        endpointCalls: second.stats.endpointCalls,
      },
      reEmbeddedShare: second.counts.embedded / second.counts.chunks,
      baseline: { description: 'no chunk index: every chunk embedded again', reEmbeddedShare: 1 },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
