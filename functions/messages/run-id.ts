import { z } from 'zod';

/** Run ids as `newRunId` makes them (`r-20261128T235108Z-3f9a1c`); the date part names the partition. */
export const runIdSchema = z
  .string()
  .regex(/^r-\d{8}T\d{6}Z-[0-9a-z]+$/, 'must be a run id such as r-20261128T235108Z-3f9a1c');
