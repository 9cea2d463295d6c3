import { RunNotReady } from '../../finalize/run-not-ready.ts';
import type { ObjectStore } from '../../ports/object-store.ts';

const decoder = new TextDecoder();

/** A partial a unit left for its stage's merge; missing means the run is not ready to merge. */
export async function readPartial<T>(store: ObjectStore, key: string): Promise<T> {
  const bytes = await store.get(key);
  if (!bytes) throw new RunNotReady(`missing ${key}`);
  return JSON.parse(decoder.decode(bytes)) as T;
}
