/** Where a command writes: stdout for results, stderr for progress and errors. */
export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
}

/** Streams whose reader closed the pipe: their later writes are dropped. */
const closedPipes = new WeakSet<NodeJS.WritableStream>();
const guardedStreams = new WeakSet<NodeJS.WritableStream>();

/**
 * Listens for the EPIPE a stream emits once its reader has gone (`sluice query ... | head
 * -4`): without a listener Node throws it as an unhandled 'error' event, a stack trace and
 * exit code 1 for what the reader chose. The command goes on with the stream dropped and
 * ends as it would have: a run is not cut off half-written by a closed pipe, and a shell
 * sees the command's own exit code. Any other error on the stream is thrown as before.
 */
function guard(stream: NodeJS.WritableStream): void {
  if (guardedStreams.has(stream)) return;
  guardedStreams.add(stream);
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') closedPipes.add(stream);
    // Writes made before the EPIPE surfaced fail on the destroyed stream: the same closed pipe.
    else if (!closedPipes.has(stream)) throw error;
  });
}

/** Writes one line to a process stream, unless its reader has closed the pipe. */
export function writeLine(stream: NodeJS.WritableStream, line: string): void {
  guard(stream);
  if (!closedPipes.has(stream)) stream.write(`${line}\n`);
}

/**
 * Every command's output goes through here (`main`'s default io), so each one exits
 * quietly when its reader closes stdout or stderr.
 */
export const processIo: CommandIo = {
  out: (line) => writeLine(process.stdout, line),
  err: (line) => writeLine(process.stderr, line),
};
