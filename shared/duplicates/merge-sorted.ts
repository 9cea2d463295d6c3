interface Head<T> {
  value: T;
  readonly input: number;
  readonly iterator: AsyncIterator<T>;
}

/**
 * K-way merge of streams each sorted by `compare`: one value per input held at a time.
 * Equal values come out in input order. Fails on an input that goes backwards, so an
 * unsorted list can never pass for a smaller one.
 */
export async function* mergeSorted<T>(
  inputs: readonly AsyncIterable<T>[],
  compare: (a: T, b: T) => number,
): AsyncGenerator<T> {
  const heap: Head<T>[] = [];
  const less = (a: Head<T>, b: Head<T>): boolean => {
    const order = compare(a.value, b.value);
    return order < 0 || (order === 0 && a.input < b.input);
  };
  const siftDown = (): void => {
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      let least = i;
      if (left < heap.length && less(heap[left]!, heap[least]!)) least = left;
      if (left + 1 < heap.length && less(heap[left + 1]!, heap[least]!)) least = left + 1;
      if (least === i) return;
      [heap[i], heap[least]] = [heap[least]!, heap[i]!];
      i = least;
    }
  };
  const push = (head: Head<T>): void => {
    heap.push(head);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const iterators: AsyncIterator<T>[] = [];
  try {
    for (const [input, source] of inputs.entries()) {
      const iterator = source[Symbol.asyncIterator]();
      iterators.push(iterator);
      const first = await iterator.next();
      if (!first.done) push({ value: first.value, input, iterator });
    }
    while (heap.length > 0) {
      const top = heap[0]!;
      yield top.value;
      const next = await top.iterator.next();
      if (next.done) {
        const last = heap.pop()!;
        if (heap.length > 0) {
          heap[0] = last;
          siftDown();
        }
      } else {
        if (compare(next.value, top.value) < 0) throw new Error(`input ${top.input} is not sorted`);
        top.value = next.value;
        siftDown();
      }
    }
  } finally {
    await Promise.allSettled(iterators.map((it) => it.return?.()));
  }
}
