import type { RejectKind } from './run-report-data.ts';

/**
 * The kind of a reject reason: what is left when the details of the one record are taken
 * out, so that a run's rejects group into a few bars. The text after the first `": "` (a
 * parser's message, where the kept record is), the value of an id (`duplicate id "d-7"`) and
 * numbers (`record is 2000311 bytes`) differ per record; field names and the rule do not.
 */
export function rejectKindOf(reason: string): string {
  const colon = reason.indexOf(': ');
  const head = colon >= 0 ? reason.slice(0, colon) : reason;
  return head
    .replace(/\bid "(?:[^"\\]|\\.)*"/g, 'id "…"')
    .replace(/\d+/g, 'N')
    .trim();
}

/** Counts reasons by kind as they are read, so a run's rejects are never held all at once. */
export class RejectKindCounter {
  private readonly kinds = new Map<string, { count: number; example: string }>();

  add(reason: string): void {
    const kind = rejectKindOf(reason);
    const seen = this.kinds.get(kind);
    if (seen) seen.count += 1;
    else this.kinds.set(kind, { count: 1, example: reason });
  }

  /** The kinds, most frequent first (ties by kind), each with its first reason as the example. */
  counts(): RejectKind[] {
    return [...this.kinds]
      .map(([kind, { count, example }]) => ({ kind, count, example }))
      .sort((a, b) => b.count - a.count || (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0));
  }
}

/** Counts reasons by kind, most frequent first (ties by kind), each with its first reason as the example. */
export function countRejectKinds(reasons: Iterable<string>): RejectKind[] {
  const counter = new RejectKindCounter();
  for (const reason of reasons) counter.add(reason);
  return counter.counts();
}
