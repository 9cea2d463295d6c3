#!/usr/bin/env node
// Entry point for `npx sluice`: runs the CLI compiled from the checked-out TypeScript
// (rebuilt when a source changes), so there is no build step to forget.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import './quiet-sdk-warning.js';
import { loadCli } from './load-cli.js';

// `run` and `redrive` coordinate unit threads that have bounded heaps of their own; the
// main thread only keeps the queue, run store and chunk index, so it gets a small young
// generation and a capped old one too. Without them V8 lets garbage pile up to several
// times the live set (docs/decisions.md). Flags set by the user win.
const HEAP_FLAGS = ['--max-semi-space-size=4', '--max-old-space-size=192'];
const command = process.argv[2];
const userFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
const heapSet = userFlags.some((f) => /^--max-(old|semi)-space-size/.test(f));

if ((command === 'run' || command === 'redrive') && !heapSet && process.env.SLUICE_HEAP_SET !== '1') {
  const child = spawn(
    process.execPath,
    [...HEAP_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, SLUICE_HEAP_SET: '1' } },
  );
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 1);
  });
} else {
  const { main } = await loadCli();
  process.exitCode = await main(process.argv.slice(2));
}
