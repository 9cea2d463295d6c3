// A unit thread's entry when the CLI runs from source: TypeScript loads through tsx,
// registered here because Node 20 does not pass the main thread's loader to workers.
import { register } from 'tsx/esm/api';

register();
await import('./unit-worker.ts');
