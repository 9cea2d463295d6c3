import { open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { SluiceError } from '../../../errors/errors.ts';

/**
 * A reader of the files the local chunk index kept before it moved onto LevelDB, so an
 * index written by an older Sluice is imported on first open. Per pipeline those were a
 * JSON-lines data log (`<pipeline>.jsonl`, `<pipeline>.<n>.jsonl` after the n-th
 * compaction; the source of truth: later lines supersede earlier ones for the same key),
 * key-index runs (`<pipeline>.<n>.<seq>.run`), a manifest (`<pipeline>.manifest`,
 * `sluice-chunk-index/2`) naming the current data log, or before it a key file
 * (`<pipeline>.keys`, `sluice-chunk-index/1`) doing the same, and temporary files. Only
 * the data log's document records are read (its chunk records held vectors, which the
 * index no longer keeps); every file is removed once they are imported.
 */

/** A chunk index file that cannot be used as it is; the message names the file and what to do. */
export class ChunkIndexFileError extends SluiceError {}

/** A document line of an old data log, its fields as parsed (checked by the importer). */
export type OldDocRecord = { readonly d: string; readonly n?: unknown; readonly s?: unknown };

const MANIFEST_FORMAT = 'sluice-chunk-index/2';
const KEY_FILE_FORMAT = 'sluice-chunk-index/1';
const NEWLINE = 10;
const CHUNK_RECORD = Buffer.from('{"c":');
const SCAN_BLOCK_BYTES = 1024 * 1024;
const PIPELINE = '[a-z0-9][a-z0-9-]*';
const DATA_LOG = new RegExp(`^(${PIPELINE})(?:\\.(\\d+))?\\.jsonl$`);
const OTHER_FILE = new RegExp(`^(${PIPELINE})(?:\\.manifest|\\.keys|\\.\\d+\\.\\d+\\.run|\\..*\\.tmp)$`);

/** One pipeline's old files: the data log to import (if any), and every file to remove afterwards. */
export interface OldPipelineFiles {
  readonly pipeline: string;
  readonly dataLog: string | undefined;
  /** The data log last, so that a crash while removing leaves it for the next open to import again. */
  readonly files: readonly string[];
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

async function readHeader(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const bytes = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
      const nl = bytes.subarray(0, bytesRead).indexOf(NEWLINE);
      text = bytes.toString('utf8', 0, nl < 0 ? bytesRead : nl);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The data log a manifest or key file names, checked as the old index checked it: one of
 * an unknown format stops the import, naming the file.
 */
async function namedDataLog(
  dir: string,
  pipeline: string,
  file: string,
  format: string,
  kind: string,
): Promise<string | undefined> {
  const header = await readHeader(file);
  if (header === undefined) return undefined;
  const data = header.data;
  const match = typeof data === 'string' ? DATA_LOG.exec(data) : null;
  if (header.format !== format || !match || match[1] !== pipeline)
    throw new ChunkIndexFileError(
      `${file} is not a ${format} ${kind}; remove it and the index is imported from the newest data log`,
    );
  const log = path.join(dir, data as string);
  return (await exists(log)) ? log : undefined;
}

/**
 * The old files in `dir`, per pipeline, with the data log that holds its records: the one
 * its manifest names, else the one its key file names, else the newest generation.
 */
export async function findOldFiles(dir: string): Promise<OldPipelineFiles[]> {
  const names = await fileNames(dir);
  const found: OldPipelineFiles[] = [];
  for (const [pipeline, group] of groupOldFiles(names)) found.push(await oldFilesOf(dir, pipeline, group));
  return found;
}

/** The names in `dir`, none when it is missing or not a folder. */
async function fileNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw error;
  }
}

/** One pipeline's old files: its data logs by generation, and its other files. */
export interface OldFileGroup {
  readonly logs: { readonly name: string; readonly generation: number }[];
  readonly others: string[];
}

/** Groups old file names by pipeline, in name order; names of no old file are left out. */
export function groupOldFiles(names: readonly string[]): Map<string, OldFileGroup> {
  const byPipeline = new Map<string, OldFileGroup>();
  const groupOf = (pipeline: string): OldFileGroup => {
    let group = byPipeline.get(pipeline);
    if (!group) {
      group = { logs: [], others: [] };
      byPipeline.set(pipeline, group);
    }
    return group;
  };
  for (const name of [...names].sort()) {
    const log = DATA_LOG.exec(name);
    if (log) groupOf(log[1]!).logs.push({ name, generation: Number(log[2] ?? 0) });
    else {
      const other = OTHER_FILE.exec(name);
      if (other) groupOf(other[1]!).others.push(name);
    }
  }
  return byPipeline;
}

/** A pipeline's files, its data log last: the one its manifest names, else its key file's, else the newest. */
async function oldFilesOf(
  dir: string,
  pipeline: string,
  { logs, others }: OldFileGroup,
): Promise<OldPipelineFiles> {
  let dataLog = await namedDataLog(
    dir,
    pipeline,
    path.join(dir, `${pipeline}.manifest`),
    MANIFEST_FORMAT,
    'manifest',
  );
  dataLog ??= await namedDataLog(
    dir,
    pipeline,
    path.join(dir, `${pipeline}.keys`),
    KEY_FILE_FORMAT,
    'key file',
  );
  const newest = logs.reduce<(typeof logs)[number] | undefined>(
    (best, log) => (!best || log.generation > best.generation ? log : best),
    undefined,
  );
  dataLog ??= newest && path.join(dir, newest.name);
  const files = [...others, ...logs.map((log) => log.name)]
    .map((name) => path.join(dir, name))
    .filter((file) => file !== dataLog);
  return { pipeline, dataLog, files: dataLog ? [...files, dataLog] : files };
}

/** Whether the line at `start` opens as a chunk record does (`{"c":`). */
function isChunkRecord(bytes: Buffer, start: number): boolean {
  const end = start + CHUNK_RECORD.length;
  return end <= bytes.length && bytes.compare(CHUNK_RECORD, 0, CHUNK_RECORD.length, start, end) === 0;
}

/**
 * Calls `onDoc` with each whole, parseable document record (`{"d": id, "n": chunk count,
 * "s": source}`) of an old data log in log order (so a later one supersedes an earlier one
 * for the same id), reading blocks so memory stays flat. Chunk records (`{"c": id, "h":
 * sha, "v": base64 vector, "r": run}`) are skipped: the index keeps no vectors now. A torn
 * last line, or any line that is not a record, is skipped.
 */
export async function readOldDocs(
  file: string,
  onDoc: (record: OldDocRecord) => void | Promise<void>,
): Promise<void> {
  const handle = await open(file, 'r');
  try {
    const block = Buffer.allocUnsafe(SCAN_BLOCK_BYTES);
    let position = 0;
    let carry: Buffer | undefined;
    for (;;) {
      const { bytesRead } = await handle.read(block, 0, block.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      const bytes = carry
        ? Buffer.concat([carry, block.subarray(0, bytesRead)])
        : block.subarray(0, bytesRead);
      let lineStart = 0;
      for (let nl = bytes.indexOf(NEWLINE); nl !== -1; nl = bytes.indexOf(NEWLINE, lineStart)) {
        const start = lineStart;
        lineStart = nl + 1;
        // A chunk record starts `{"c":` (JSON.stringify's order): not parsed, its vector unread.
        if (isChunkRecord(bytes, start)) continue;
        let record: unknown;
        try {
          record = JSON.parse(bytes.toString('utf8', start, nl));
        } catch {
          continue;
        }
        if (typeof record !== 'object' || record === null) continue;
        if (typeof (record as { d?: unknown }).d !== 'string') continue;
        const pending = onDoc(record as OldDocRecord);
        if (pending) await pending;
      }
      carry = lineStart < bytes.length ? Buffer.from(bytes.subarray(lineStart)) : undefined;
    }
  } finally {
    await handle.close();
  }
}

/** Removes the files in order; one already gone is fine. */
export async function removeOldFiles(files: readonly string[]): Promise<void> {
  for (const file of files) {
    try {
      await unlink(file);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
}
