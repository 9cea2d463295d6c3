import type { ObjectStore } from '../ports/object-store.ts';

/** @default 256 KiB */
export const DEFAULT_READ_WINDOW_BYTES = 256 * 1024;

async function readWindow(store: ObjectStore, key: string, start: number, end: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of store.readRange(key, start, end)) parts.push(chunk);
  return Buffer.concat(parts);
}

/**
 * The lines (without newlines) of bytes `[start, end)` of an object, read one window of
 * `windowBytes` at a time with `readRange`, the next window fetched while the current one
 * is consumed. A window is read whole and its request ends there, so a merge of hundreds
 * of these holds no connection open while it waits on the others (an HTTP agent's socket
 * pool would otherwise run dry and stall the merge), and memory stays at two windows each.
 * A last line without a newline is yielded too.
 */
export async function* objectLines(
  store: ObjectStore,
  key: string,
  start: number,
  end: number,
  windowBytes = DEFAULT_READ_WINDOW_BYTES,
): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const fetch = (from: number): Promise<Buffer> | undefined => {
    if (from >= end) return undefined;
    const pending = readWindow(store, key, from, Math.min(end, from + windowBytes));
    // Handled where it is awaited; this only keeps an abandoned prefetch from going unhandled.
    pending.catch(() => {});
    return pending;
  };
  let carry = '';
  let at = start;
  let next = fetch(at);
  while (next) {
    const window = await next;
    if (window.length === 0) break; // the object is shorter than `end` says
    at += window.length;
    next = fetch(at);
    const text = carry + decoder.decode(window, { stream: true });
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
      yield text.slice(from, nl);
      from = nl + 1;
    }
    carry = text.slice(from);
  }
  carry += decoder.decode();
  if (carry.length > 0) yield carry;
}

/** The first line of an object and the offset where the rest starts, reading no further than needed. */
export async function firstLine(
  store: ObjectStore,
  key: string,
  size: number,
  windowBytes = DEFAULT_READ_WINDOW_BYTES,
): Promise<{ line: string; rest: number } | undefined> {
  for await (const line of objectLines(store, key, 0, size, windowBytes)) {
    return { line, rest: Buffer.byteLength(line, 'utf8') + 1 };
  }
  return undefined;
}
