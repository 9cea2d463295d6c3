import type { WorkUnit } from '../domain/types.ts';
import type { StoredUnit } from '../ports/run-store.ts';

/** Every source a unit covers: its range's source and its packed files. */
export function sourcesOf(unit: WorkUnit): string[] {
  return [unit.sourceKey, ...unit.packed.map((f) => f.key)];
}

/** The sources a stored unit read; without its descriptor, only its range's source is known. */
export function sourcesOfStored(unit: StoredUnit): string[] {
  return unit.descriptor ? sourcesOf(unit.descriptor) : [unit.sourceKey];
}

/** Which units read each source of a run, and the sources this run did not read whole. */
export interface SourceCoverage {
  readonly unitsOf: ReadonlyMap<string, readonly StoredUnit[]>;
  /** Source key to why its removals cannot be counted (the first reason found). */
  readonly skipped: Map<string, string>;
}

/** Why a unit's sources cannot be compared, or undefined when it read them whole. */
function whyNotWhole(unit: StoredUnit): string | undefined {
  if (!unit.descriptor)
    return `unit ${unit.unitId} was stored without its descriptor, so the files it read are not known`;
  if (unit.status !== 'succeeded')
    return `unit ${unit.unitId} ${unit.status}: this run did not read the whole source`;
  return undefined;
}

/** Groups a run's units by the sources they read; a source with any unit not read whole is skipped. */
export function coverSources(units: readonly StoredUnit[]): SourceCoverage {
  const unitsOf = new Map<string, StoredUnit[]>();
  const skipped = new Map<string, string>();
  for (const unit of units) {
    const keys = sourcesOfStored(unit);
    for (const key of keys) {
      const covering = unitsOf.get(key);
      if (covering) covering.push(unit);
      else unitsOf.set(key, [unit]);
    }
    const why = whyNotWhole(unit);
    if (why) for (const key of keys) if (!skipped.has(key)) skipped.set(key, why);
  }
  return { unitsOf, skipped };
}

/** The sources to compare, sorted: those read whole, and those deleted before the run (read by no unit). */
export function eligibleSources(coverage: SourceCoverage, deleted: ReadonlySet<string>): string[] {
  return [...coverage.unitsOf.keys()]
    .filter((key) => !coverage.skipped.has(key))
    .concat([...deleted])
    .sort();
}

/** Skips every source the run read that is not skipped yet, for one reason. */
export function skipAllRead(coverage: SourceCoverage, reason: string): void {
  for (const key of coverage.unitsOf.keys())
    if (!coverage.skipped.has(key)) coverage.skipped.set(key, reason);
}
