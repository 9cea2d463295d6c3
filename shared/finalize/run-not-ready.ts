import { SluiceError } from '../errors/errors.ts';

/** Finalize was asked for too early (units still open, a partial not written yet): the request is retried. */
export class RunNotReady extends SluiceError {}
