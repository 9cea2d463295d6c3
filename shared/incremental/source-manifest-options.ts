import { DEFAULT_READ_WINDOW_BYTES } from './object-lines.ts';
import { DEFAULT_SEGMENT_DOCS } from './source-manifest.ts';
import type { VanishedLookups } from './vanished-documents.ts';

/** How finalize compares and replaces the source manifests of an incremental embed run. */
export interface SourceManifestOptions extends VanishedLookups {
  /** Documents per manifest segment (one segment is held in memory per source being written). @default 200,000 */
  readonly segmentDocs: number;
  /** Sources with more than `smallSourceDocs` documents compared at once. @default 8 */
  readonly concurrency: number;
  /**
   * Small requests made at once: sources of at most `smallSourceDocs` documents (a few
   * small reads and puts each, so a run of thousands of small files is not bound by
   * request latency), doc list headers, pointers, the moves scan. @default 32
   */
  readonly smallConcurrency: number;
  /** @default 10,000 */
  readonly smallSourceDocs: number;
  /** Bytes fetched per read of a doc list or segment, shrunk when one merge has many inputs. @default 256 KiB */
  readonly readWindowBytes: number;
  /** Read buffers one merge may hold in all, which bounds the window when a source has hundreds of units. @default 16 MiB */
  readonly mergeBufferBytes: number;
  /**
   * Vanished documents held at once while checking whether they moved to another source
   * of the run; more are checked in successive rounds, each one scan of the run's doc
   * lists. @default 500,000
   */
  readonly maxCandidates: number;
  /**
   * Time (ms since the epoch) after which no further source is started: those left are
   * skipped, keep their manifest, and are compared by the next run that completes them,
   * so a run of very many sources still finishes within its function's timeout.
   * @default none
   */
  readonly stopAfter?: number;
  /** @default Date.now */
  readonly clock?: () => number;
}

export const DEFAULT_SOURCE_MANIFEST_OPTIONS: SourceManifestOptions = {
  segmentDocs: DEFAULT_SEGMENT_DOCS,
  concurrency: 8,
  smallConcurrency: 32,
  smallSourceDocs: 10_000,
  readWindowBytes: DEFAULT_READ_WINDOW_BYTES,
  mergeBufferBytes: 16 * 1024 * 1024,
  maxCandidates: 500_000,
};

/** Read window per input so that one merge of `inputs` streams holds about `mergeBufferBytes`. */
export function windowFor(
  opts: Pick<SourceManifestOptions, 'mergeBufferBytes' | 'readWindowBytes'>,
  inputs: number,
): number {
  // Two windows per input: the one being read and the one being fetched.
  const share = Math.floor(opts.mergeBufferBytes / (2 * Math.max(1, inputs)));
  return Math.max(16 * 1024, Math.min(opts.readWindowBytes, share));
}
