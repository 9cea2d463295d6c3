import type { IndexedDoc } from '../../ports/chunk-index.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { putInBlocks } from '../../work/unit-output.ts';
import { PackedIndexedDocs } from './packed-docs.ts';
import type { PendingDocUpdates } from './pending-doc-updates.ts';

/**
 * The index entries an embed unit replaced, as they were before its run:
 * `runs/<p>/<runId>/docs/<unitId>.replaced.jsonl`, beside the unit's doc list, written before
 * the unit records its own. A delivery that dies after recording leaves the index holding
 * this run's entries, and the entries they replaced are gone from it: the retry reads them
 * here, so it counts removed chunks, carries chunks and writes entries as the first delivery
 * did, rather than against its own entries (removed 0, every chunk embedded again). Another
 * unit of the run that finds one of these entries (a continuation, the same id in another
 * unit) reads them here too. Deterministic, so a retried unit rewrites it; gc removes it
 * with the doc lists (cli/gc: the run's `docs` folder).
 */
export function replacedEntriesKey(pipeline: string, runId: string, unitId: string): string {
  return `runs/${pipeline}/${runId}/docs/${unitId}.replaced.jsonl`;
}

/** Lines per block written. */
const LINES_PER_BLOCK = 1024;

/** An entry as a line: `[id, chunkCount, sourceKey | null]` and, with chunks, `runId, unitId, firstRow, base64 fingerprints`. */
function lineOf(doc: IndexedDoc): string {
  const head = [doc.docId, doc.chunkCount, doc.sourceKey ?? null];
  const chunks = doc.chunks;
  const fields = chunks
    ? [
        ...head,
        chunks.at.runId,
        chunks.at.unitId,
        chunks.at.firstRow,
        Buffer.from(chunks.fingerprints).toString('base64'),
      ]
    : head;
  return `${JSON.stringify(fields)}\n`;
}

function docOfLine(line: string): IndexedDoc {
  const [docId, chunkCount, sourceKey, runId, unitId, firstRow, fingerprints] = JSON.parse(line) as [
    string,
    number,
    string | null,
    string?,
    string?,
    number?,
    string?,
  ];
  const doc = { docId, chunkCount, ...(sourceKey === null ? {} : { sourceKey }) };
  if (runId === undefined) return doc;
  return {
    ...doc,
    chunks: {
      fingerprints: new Uint8Array(Buffer.from(fingerprints!, 'base64')),
      at: { runId, unitId: unitId!, firstRow: firstRow! },
    },
  };
}

/** A unit's replaced entries as read back: packed, found by id. */
class ReplacedEntries {
  readonly docs = new PackedIndexedDocs();
  private readonly numbers = new Map<string, number>();

  add(doc: IndexedDoc): void {
    if (!this.numbers.has(doc.docId)) this.numbers.set(doc.docId, this.docs.add(doc));
  }

  has(docId: string): boolean {
    return this.numbers.has(docId);
  }

  get(docId: string): IndexedDoc | undefined {
    const k = this.numbers.get(docId);
    return k === undefined ? undefined : this.docs.get(k, docId);
  }

  *all(): Generator<IndexedDoc> {
    for (let k = 0; k < this.docs.size; k += 1) yield this.docs.get(k);
  }
}

/** What a window's lookups found, as it stood before this run. */
export interface EntriesBefore {
  /** Each document's entry before this run (none: it had none). */
  readonly previous: Map<string, IndexedDoc>;
  /** Documents whose stored entry this run wrote already: a unit that keeps the old one must put it back. */
  readonly rewritten: ReadonlySet<string>;
}

/**
 * Turns the entries a unit's lookups find into the entries as they were before its run:
 * an entry naming a part of this run was recorded by an earlier delivery of this unit or by
 * another unit of the run, and the entry it replaced is read from that unit's
 * {@link replacedEntriesKey} (none there: the document had no entry). Each unit's file is
 * read once per delivery, when a lookup first finds one of its entries.
 *
 * An entry without fingerprints (an id twice in a window, a document over
 * MAX_INDEXED_CHUNKS) names no part: it is looked for in this unit's own file only (read
 * once per delivery that finds such an entry), so a retry counts it as its first delivery
 * did; one recorded by another unit of the run is still taken for an older one.
 */
export class PriorEntries {
  private readonly units = new Map<string, ReplacedEntries | undefined>();

  constructor(
    private readonly store: ObjectStore,
    private readonly pipeline: string,
    private readonly runId: string,
    private readonly unitId: string,
  ) {}

  async before(found: Map<string, IndexedDoc>): Promise<EntriesBefore> {
    const rewritten = new Set<string>();
    for (const [docId, doc] of found) {
      const at = doc.chunks?.at;
      if (at === undefined) {
        // An entry without fingerprints names no run, but one this unit's earlier delivery
        // replaced is in its own file: that delivery's record (an id twice in a window, a
        // document over MAX_INDEXED_CHUNKS) or one written over it since.
        const prior = (await this.replacedBy(this.unitId))?.get(docId);
        if (prior) {
          found.set(docId, prior);
          rewritten.add(docId);
        }
        continue;
      }
      if (at.runId !== this.runId) continue;
      rewritten.add(docId);
      const prior = (await this.replacedBy(at.unitId))?.get(docId);
      if (prior) found.set(docId, prior);
      else found.delete(docId);
    }
    return { previous: found, rewritten };
  }

  /**
   * Writes the entries `updates` replace, before they are recorded, with those an earlier
   * delivery of this unit wrote there (a retry that stops sooner leaves that delivery's
   * entries past its end in the index, and the next unit reads them here). That file is
   * read here even where no lookup found an entry of this unit: a record that failed
   * part-way may have left its first entries unwritten (a batch's unprocessed items) and
   * later ones written, past a retry's sooner end. Nothing is written when no entry is
   * replaced.
   */
  async write(updates: PendingDocUpdates): Promise<void> {
    // None replaced: an earlier delivery's file, if any, stands as it is.
    if (updates.replacedEntries().next().done) return;
    const earlier = await this.replacedBy(this.unitId);
    const store = this.store;
    const docs = function* () {
      if (earlier) yield* earlier.all();
      for (const doc of updates.replacedEntries()) if (!earlier?.has(doc.docId)) yield doc;
    };
    await putInBlocks(
      store,
      replacedEntriesKey(this.pipeline, this.runId, this.unitId),
      blocksOf(docs()),
      'application/x-ndjson',
    );
  }

  private async replacedBy(unitId: string): Promise<ReplacedEntries | undefined> {
    if (this.units.has(unitId)) return this.units.get(unitId);
    const body = await this.store.get(replacedEntriesKey(this.pipeline, this.runId, unitId));
    let entries: ReplacedEntries | undefined;
    if (body) {
      entries = new ReplacedEntries();
      for (const line of Buffer.from(body).toString('utf8').split('\n'))
        if (line !== '') entries.add(docOfLine(line));
    }
    this.units.set(unitId, entries);
    return entries;
  }
}

function* blocksOf(docs: Iterable<IndexedDoc>): Generator<string> {
  let block = '';
  let lines = 0;
  for (const doc of docs) {
    block += lineOf(doc);
    lines += 1;
    if (lines === LINES_PER_BLOCK) {
      yield block;
      block = '';
      lines = 0;
    }
  }
  if (block !== '') yield block;
}
