import { compareDocIds, type DocEntry, DocListError } from './doc-lines.ts';

interface Head {
  entry: DocEntry;
  readonly input: number;
  readonly iterator: AsyncIterator<DocEntry>;
}

/** Min-heap of the inputs' current entries, ordered by doc id, then by input (a stable merge). */
class HeadHeap {
  private readonly items: Head[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Head | undefined {
    return this.items[0];
  }

  push(head: Head): void {
    const items = this.items;
    items.push(head);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  /** Removes the top; call after the top's entry was consumed and it has no next entry. */
  pop(): void {
    const items = this.items;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      this.siftDown();
    }
  }

  /** The top's entry changed (it advanced): restore the order. */
  siftDown(): void {
    const items = this.items;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < items.length && this.less(items[left]!, items[least]!)) least = left;
      if (right < items.length && this.less(items[right]!, items[least]!)) least = right;
      if (least === i) return;
      [items[i], items[least]] = [items[least]!, items[i]!];
      i = least;
    }
  }

  private less(a: Head, b: Head): boolean {
    const order = compareDocIds(a.entry.id, b.entry.id);
    return order < 0 || (order === 0 && a.input < b.input);
  }
}

/**
 * K-way merge of doc streams that are each sorted by {@link compareDocIds}: one entry
 * per input held at a time, so memory is the inputs' read buffers, not their contents.
 * Equal ids from several inputs come out next to each other, in input order.
 */
export async function* mergeSortedDocs(inputs: readonly AsyncIterable<DocEntry>[]): AsyncGenerator<DocEntry> {
  const heap = new HeadHeap();
  const iterators: AsyncIterator<DocEntry>[] = [];
  try {
    for (const [input, source] of inputs.entries()) {
      const iterator = source[Symbol.asyncIterator]();
      iterators.push(iterator);
      const first = await iterator.next();
      if (!first.done) heap.push({ entry: first.value, input, iterator });
    }
    for (let top = heap.peek(); top; top = heap.peek()) {
      yield top.entry;
      const next = await top.iterator.next();
      if (next.done) heap.pop();
      else {
        if (compareDocIds(next.value.id, top.entry.id) < 0)
          throw new DocListError(`input ${top.input} is not sorted: ${next.value.id} after ${top.entry.id}`);
        top.entry = next.value;
        heap.siftDown();
      }
    }
  } finally {
    // An early stop (or a failed input) closes every input, so their reads end too.
    await Promise.allSettled(iterators.map((it) => it.return?.()));
  }
}

/**
 * One entry per id from a sorted stream, equal neighbours' chunk counts summed (a
 * document listed twice in a source, by two records with the same id, has both copies'
 * chunks in `embeddings`). Fails on an id that goes backwards, so an unsorted input can
 * never pass for a smaller manifest.
 */
export async function* sumDuplicateDocs(sorted: AsyncIterable<DocEntry>): AsyncGenerator<DocEntry> {
  let held: DocEntry | undefined;
  for await (const entry of sorted) {
    if (!held) {
      held = entry;
      continue;
    }
    const order = compareDocIds(entry.id, held.id);
    if (order === 0) held = { id: held.id, chunks: held.chunks + entry.chunks };
    else if (order < 0) throw new DocListError(`documents out of order: ${entry.id} after ${held.id}`);
    else {
      yield held;
      held = entry;
    }
  }
  if (held) yield held;
}

/**
 * The entries of `before` whose id is not in `after`, both sorted with one entry per id.
 * Reads both to their end (a caller may be writing `after` out as it streams by).
 */
export async function* docsMissingFrom(
  before: AsyncIterable<DocEntry>,
  after: AsyncIterable<DocEntry>,
): AsyncGenerator<DocEntry> {
  const old = before[Symbol.asyncIterator]();
  const now = after[Symbol.asyncIterator]();
  try {
    let a = await old.next();
    let b = await now.next();
    while (!a.done) {
      if (b.done) {
        yield a.value;
        a = await old.next();
        continue;
      }
      const order = compareDocIds(a.value.id, b.value.id);
      if (order < 0) {
        yield a.value;
        a = await old.next();
      } else if (order === 0) {
        a = await old.next();
        b = await now.next();
      } else {
        b = await now.next();
      }
    }
    while (!b.done) b = await now.next();
  } finally {
    await Promise.allSettled([old.return?.(), now.return?.()]);
  }
}
