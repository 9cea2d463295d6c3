#!/usr/bin/env node
// Entry point for `npx sluice`: loads the TypeScript CLI through tsx so no build step is needed.
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every start that its 2027 releases will need Node 22. It is not
// actionable for a local run and would bury the run's own output, so only it is dropped.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const text = typeof warning === 'string' ? warning : warning?.message;
  if (typeof text === 'string' && text.includes('will require node >=22')) return;
  emitWarning(warning, ...rest);
};

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
