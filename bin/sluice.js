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
// glibc gives each thread that allocates its own malloc arena (up to 8 per core) and each
// keeps what it freed: a run's unit threads, LevelDB's writers and its compaction thread
// held 11 arenas. Two cost no speed and keep less (docs/decisions.md). A user's value wins.
const ALLOCATOR_ENV = { MALLOC_ARENA_MAX: '2' };
const command = process.argv[2];
const userFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
const heapSet = userFlags.some((f) => /^--max-(old|semi)-space-size/.test(f));

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Stops this process (as SIGTERM would) once the process that started it is gone. `npx
 * sluice` starts it through npm and `sh -c`: killing npm by its PID ends the shell but
 * not this process, which would keep a model server or a run going with nobody to stop
 * it. Only watched when there is such a go-between (npm, or this file's own wrapper):
 * `nohup node bin/sluice.js serve-model &` still outlives the shell that started it.
 */
function stopWhenOrphaned() {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, 500);
  timer.unref();
}

if (process.env.npm_command !== undefined || process.env.SLUICE_HEAP_SET === '1') stopWhenOrphaned();

if ((command === 'run' || command === 'redrive') && !heapSet && process.env.SLUICE_HEAP_SET !== '1') {
  const child = spawn(
    process.execPath,
    [...HEAP_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...ALLOCATOR_ENV, ...process.env, SLUICE_HEAP_SET: '1' } },
  );
  // The run is the child's: a signal sent to this process by its PID goes on to it, and
  // this process ends when the child does, the way the child did.
  const forward = (signal) => child.kill(signal);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  child.on('exit', (code, signal) => {
    for (const s of FORWARDED_SIGNALS) process.off(s, forward);
    if (signal !== null) {
      // Die of the same signal, so a shell or supervisor sees what ended the run.
      process.kill(process.pid, signal);
      // A signal this process cannot die of (one it ignores) still gives 128 + its number.
      process.exitCode = 128 + (constants.signals[signal] ?? 0);
    } else process.exitCode = code ?? 1;
  });
} else {
  const { main } = await loadCli();
  process.exitCode = await main(process.argv.slice(2));
}
