import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openHome } from '../cli/home.ts';
import { runLocalPipeline } from '../cli/local-run.ts';
import { queryLocalTables } from '../cli/query/local-tables.ts';
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
  /**
   * A third drop with 5% of the documents deleted: the removed chunks finalize finds by
   * diffing the source's manifest, against the deleted documents' chunks in the second run.
   */
  readonly deletion: {
    deletedDocuments: number;
    removedDocuments: number;
    removedChunks: number;
    expectedRemovedChunks: number;
    embedded: number;
  };
  /** Share of chunks re-embedded after the edit: the target is <= 0.06 for 5% of documents edited. */
  readonly reEmbeddedShare: number;
  readonly baseline: { description: string; reEmbeddedShare: number };
}

/**
 * Runs the docs pipeline over generated documents, edits 5% of them (one sentence
 * replaced at a random position, so chunks after the edit shift), runs again, and
 * reports the share of chunks embedded again; then deletes 5% of the documents, runs a
 * third time and reports the removed chunks detected against those expected. Baseline: a pipeline without a chunk
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

    const deleted = new Set<string>();
    while (deleted.size < Math.round(documents * 0.05))
      deleted.add(changed[Math.floor(rand() * documents)]!.id);
    await writeFile(
      file,
      `${changed
        .filter((d) => !deleted.has(d.id))
        .map((d) => JSON.stringify(d))
        .join('\n')}\n`,
    );
    const third = await run();
    const { rows } = await queryLocalTables(
      home.bucketDir,
      `select count(*)::int as n from embeddings where run_id = '${second.runId}' and doc_id in (${[...deleted].map((id) => `'${id}'`).join(', ')})`,
    );

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
      deletion: {
        deletedDocuments: deleted.size,
        removedDocuments: third.counts.removedDocuments ?? 0,
        removedChunks: third.counts.removedChunks,
        expectedRemovedChunks: Number(rows[0]?.n ?? 0),
        embedded: third.counts.embedded,
      },
      reEmbeddedShare: second.counts.embedded / second.counts.chunks,
      baseline: { description: 'no chunk index: every chunk embedded again', reEmbeddedShare: 1 },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
