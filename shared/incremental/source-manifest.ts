import { sourceManifestPointerKey, sourceManifestSegmentKey } from '../output/keys.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { compareDocIds, type DocEntry, DocListError, formatDocLine, parseDocLine } from './doc-lines.ts';
import { objectLines } from './object-lines.ts';

export const SOURCE_MANIFEST_FORMAT = 'sluice-source-manifest/1';

/** @default 200,000 documents (about 10 MB of lines) per segment. */
export const DEFAULT_SEGMENT_DOCS = 200_000;

export interface ManifestSegment {
  readonly docs: number;
  /** Size of the segment object, header line included. */
  readonly bytes: number;
}

/** A source's manifest as of one run: what `current.json` points at. */
export interface ManifestVersion {
  /** The run that wrote it (the last run that completed the source). */
  readonly runId: string;
  /** When that run started: a run that started earlier never replaces the manifest (run ids only order by second). */
  readonly runStartedAt: string;
  /** Which of the source's two slots holds its segments. */
  readonly slot: 0 | 1;
  readonly segments: readonly ManifestSegment[];
  readonly docs: number;
  readonly chunks: number;
  /** What `runId` counted as removed when it replaced the manifest before it (kept for a retried finalize). */
  readonly removedDocuments: number;
  readonly removedChunks: number;
}

/**
 * `runs/<p>/sources/<sha>/current.json`. Written only after every segment of the new
 * slot is, so a crash while writing leaves the pointer on the intact old slot. It keeps
 * the version it replaced, so a finalize of the same run that is retried after the flip
 * reuses the counts instead of diffing the new manifest against itself.
 */
export interface ManifestPointer extends ManifestVersion {
  readonly format: typeof SOURCE_MANIFEST_FORMAT;
  readonly sourceKey: string;
  readonly writtenAt: string;
  readonly previous: ManifestVersion | null;
}

/** First line of each segment: lets a reader tell a segment of the pointed version from a stray one. */
interface SegmentHeader {
  readonly format: typeof SOURCE_MANIFEST_FORMAT;
  readonly runId: string;
  readonly segment: number;
  readonly docs: number;
}

const decoder = new TextDecoder();

export async function readManifestPointer(
  store: ObjectStore,
  pipeline: string,
  sourceKey: string,
): Promise<ManifestPointer | undefined> {
  const key = sourceManifestPointerKey(pipeline, sourceKey);
  const bytes = await store.get(key);
  if (!bytes) return undefined;
  const pointer = JSON.parse(decoder.decode(bytes)) as ManifestPointer;
  if (pointer.format !== SOURCE_MANIFEST_FORMAT || pointer.sourceKey !== sourceKey)
    throw new DocListError(`${key} is not the manifest pointer of ${sourceKey}`);
  return pointer;
}

export async function writeManifestPointer(
  store: ObjectStore,
  pipeline: string,
  pointer: ManifestPointer,
): Promise<void> {
  await store.put(
    sourceManifestPointerKey(pipeline, pointer.sourceKey),
    `${JSON.stringify(pointer)}\n`,
    'application/json',
  );
}

/**
 * Every document of a stored manifest version, in id order, segment after segment. Each
 * segment must carry the version's run id and the doc count the pointer gave it:
 * anything else (a slot overwritten by another run finalizing the same source at the
 * same time) fails with a {@link DocListError} rather than pass for the manifest.
 */
export async function* manifestDocs(
  store: ObjectStore,
  pipeline: string,
  sourceKey: string,
  version: Pick<ManifestVersion, 'runId' | 'slot' | 'segments'>,
  windowBytes?: number,
): AsyncGenerator<DocEntry> {
  for (const [index, segment] of version.segments.entries()) {
    const key = sourceManifestSegmentKey(pipeline, sourceKey, version.slot, index);
    let header: SegmentHeader | undefined;
    let docs = 0;
    for await (const line of objectLines(store, key, 0, segment.bytes, windowBytes)) {
      if (!header) {
        header = JSON.parse(line) as SegmentHeader;
        if (header.runId !== version.runId || header.segment !== index || header.docs !== segment.docs)
          throw new DocListError(
            `${key} belongs to run ${header.runId}, not to the manifest of run ${version.runId} that current.json names`,
          );
        continue;
      }
      docs += 1;
      yield parseDocLine(line);
    }
    if (docs !== segment.docs)
      throw new DocListError(`${key} holds ${docs} documents; the manifest pointer says ${segment.docs}`);
  }
}

/**
 * Writes a manifest version into one slot as segments of at most `segmentDocs` documents
 * each, put as each fills, so a source of 20 million documents never has more than one
 * segment in memory. Segment keys are fixed per slot and index: writing the same version
 * again (a retried finalize) writes the same objects.
 */
export class ManifestWriter {
  readonly segments: ManifestSegment[] = [];
  docs = 0;
  chunks = 0;
  private lines: string[] = [];
  private lastId: string | undefined;

  constructor(
    private readonly store: ObjectStore,
    private readonly pipeline: string,
    private readonly sourceKey: string,
    private readonly runId: string,
    readonly slot: 0 | 1,
    private readonly segmentDocs = DEFAULT_SEGMENT_DOCS,
  ) {}

  /** Appends a document (ids strictly increasing); writes a segment when one fills. */
  async add(entry: DocEntry): Promise<void> {
    if (this.lastId !== undefined && compareDocIds(entry.id, this.lastId) <= 0)
      throw new DocListError(`manifest of ${this.sourceKey}: ${entry.id} after ${this.lastId}`);
    this.lastId = entry.id;
    this.lines.push(formatDocLine(entry.id, entry.chunks));
    this.docs += 1;
    this.chunks += entry.chunks;
    if (this.lines.length >= this.segmentDocs) await this.flush();
  }

  /** Writes the last, partly filled segment; returns the segments written. */
  async finish(): Promise<readonly ManifestSegment[]> {
    if (this.lines.length > 0) await this.flush();
    return this.segments;
  }

  private async flush(): Promise<void> {
    const segment = this.segments.length;
    const header: SegmentHeader = {
      format: SOURCE_MANIFEST_FORMAT,
      runId: this.runId,
      segment,
      docs: this.lines.length,
    };
    const body = Buffer.from(`${JSON.stringify(header)}\n${this.lines.join('')}`, 'utf8');
    const docs = this.lines.length;
    this.lines = [];
    await this.store.put(
      sourceManifestSegmentKey(this.pipeline, this.sourceKey, this.slot, segment),
      body,
      'text/tab-separated-values',
    );
    this.segments.push({ docs, bytes: body.length });
  }
}
