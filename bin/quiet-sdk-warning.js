// The AWS SDK warns on every start that its 2027 releases will need Node 22. It is not
// actionable for a local run and would bury the run's own output, so only it is dropped.
// Imported by the CLI entry and by each unit thread (a thread has its own `process` hooks).
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const text = typeof warning === 'string' ? warning : warning?.message;
  if (typeof text === 'string' && text.includes('will require node >=22')) return;
  emitWarning(warning, ...rest);
};
