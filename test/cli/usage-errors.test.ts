import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USAGE } from '../../cli/main.ts';
import { sluice } from '../support/cli.ts';

/** Exit 2, nothing on stdout, exactly one line on stderr. */
async function expectUsageError(argv: string[], line: string | RegExp) {
  const result = await sluice(...argv);
  expect(result.code, argv.join(' ')).toBe(2);
  expect(result.out, argv.join(' ')).toEqual([]);
  expect(result.err, argv.join(' ')).toHaveLength(1);
  expect(result.err[0]!.split('\n'), argv.join(' ')).toHaveLength(1);
  if (typeof line === 'string') expect(result.err[0], argv.join(' ')).toBe(line);
  else expect(result.err[0], argv.join(' ')).toMatch(line);
}

describe('sluice usage errors', () => {
  let work: string;
  let file: string;
  let input: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-usage-'));
    file = path.join(work, 'not-a-folder');
    await writeFile(file, 'x');
    input = path.join(work, 'in.jsonl');
    await writeFile(input, '{"id":"a","text":"a"}\n');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('bare sluice is bad usage: the usage on stderr, exit 2; --help prints it on stdout, exit 0', async () => {
    const bare = await sluice();
    expect(bare).toEqual({ code: 2, out: [], err: [USAGE] });
    for (const flag of ['--help', '-h', 'help'])
      expect(await sluice(flag)).toEqual({ code: 0, out: [USAGE], err: [] });
  });

  it('says what a flag accepts when given a negative number, not "argument is ambiguous"', async () => {
    await expectUsageError(
      ['run', input, '--pipeline', 'docs', '--threads', '-1'],
      'sluice run: --threads must be an integer from 0 to 64, got "-1"',
    );
    await expectUsageError(
      ['serve-model', '--port', '-5'],
      'sluice serve-model: --port must be an integer from 0 to 65535, got "-5"',
    );
    await expectUsageError(
      ['run', input, '--pipeline', '-docs'],
      'sluice run: --pipeline needs a value, but "-docs" starts with a dash; to pass it as the value, write --pipeline=-docs',
    );
  });

  it('refuses a --home that is a file in one line, exit 2, for every command', async () => {
    const line = (command: string) =>
      `sluice ${command}: --home ${file} is a file, not a folder: give a folder`;
    await expectUsageError(['run', input, '--pipeline', 'docs', '--home', file], line('run'));
    await expectUsageError(['status', '--home', file], line('status'));
    await expectUsageError(['status', 'r-20261206T230000Z-abc123', '--home', file], line('status'));
    await expectUsageError(['query', 'select 1', '--home', file], line('query'));
    await expectUsageError(['redrive', 'r-20261206T230000Z-abc123', '--home', file], line('redrive'));
  });

  it('refuses a --home it cannot write to in one line, exit 2, before any work', async () => {
    // Root writes through a folder's mode bits; /sys refuses even root.
    let readOnly = '/sys/sluice-home';
    if (process.getuid?.() !== 0) {
      readOnly = path.join(work, 'read-only');
      await mkdir(readOnly);
      await chmod(readOnly, 0o555);
    }
    await expectUsageError(
      ['run', input, '--pipeline', 'docs', '--home', readOnly],
      new RegExp(
        `^sluice run: --home ${readOnly} is not writable \\((EACCES|EPERM|EROFS)\\): give a folder sluice can write to$`,
      ),
    );
  });
});
