import type { WorkUnit } from '../domain/types.ts';
import { SluiceError } from '../errors/errors.ts';

/** SQS's message size limit: a unit travels as one message. */
export const SQS_MESSAGE_LIMIT_BYTES = 256 * 1024;

/**
 * The planner keeps every unit descriptor under a quarter of the SQS limit, so a unit
 * is always a descriptor (never data) with room for envelope and attributes. Packing
 * closes a unit when its list of files would pass this size.
 */
export const MAX_UNIT_DESCRIPTOR_BYTES = 64 * 1024;

/** Files one unit reads at most: each is one GET, a cost the token estimate does not see. */
export const MAX_PACKED_FILES = 1000;

/** A CSV header longer than this is not copied into units, so such files are not split. */
export const MAX_CSV_HEADER_BYTES = 16 * 1024;

/** A planned unit would not fit in a queue message. */
export class UnitDescriptorTooLarge extends SluiceError {}

export function descriptorBytes(unit: WorkUnit): number {
  return Buffer.byteLength(JSON.stringify(unit), 'utf8');
}

/** Bytes a whole file adds to a unit's packed list. */
export function packedEntryBytes(entry: {
  key: string;
  size: number;
  format: string;
  compression: string;
}): number {
  return Buffer.byteLength(JSON.stringify(entry), 'utf8') + 1;
}

/** @throws UnitDescriptorTooLarge when a unit's descriptor is over {@link MAX_UNIT_DESCRIPTOR_BYTES} */
export function assertUnitsFit(units: readonly WorkUnit[]): void {
  for (const unit of units) {
    const bytes = descriptorBytes(unit);
    if (bytes > MAX_UNIT_DESCRIPTOR_BYTES) {
      throw new UnitDescriptorTooLarge(
        `unit ${unit.unitId} of run ${unit.runId} is a ${bytes}-byte descriptor, over the planner's limit of ` +
          `${MAX_UNIT_DESCRIPTOR_BYTES} bytes (SQS allows ${SQS_MESSAGE_LIMIT_BYTES})`,
      );
    }
  }
}
