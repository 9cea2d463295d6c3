import type { FileMetaData } from 'hyparquet';

/** Footer key of a part that finalize rewrote: the ordinals (as the unit wrote them) it dropped. */
export const DROPPED_ORDINALS_KEY = 'sluice.droppedOrdinals';

/** The ordinals a rewritten part's footer names as dropped; none for a part never rewritten. */
export function droppedOrdinalsOf(metadata: FileMetaData): Set<number> {
  const value = metadata.key_value_metadata?.find((kv) => kv.key === DROPPED_ORDINALS_KEY)?.value;
  return new Set<number>(value ? (JSON.parse(value) as number[]) : []);
}
