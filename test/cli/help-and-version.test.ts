import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, USAGE } from '../../cli/main.ts';
import { sluice } from '../support/cli.ts';

describe('sluice help and version', () => {
  it.each(COMMANDS.map((c) => c.name))(
    '%s --help and -h print its usage on stdout and exit 0',
    async (name) => {
      for (const flag of ['--help', '-h']) {
        const result = await sluice(name, flag);
        expect(result.code, `${name} ${flag}`).toBe(0);
        expect(result.err).toEqual([]);
        expect(result.out).toHaveLength(1);
        expect(result.out[0]).toMatch(new RegExp(`^usage: sluice ${name} `));
        // Its own usage, not every command's.
        expect(result.out[0]).not.toContain(USAGE.split('\n\n')[0]);
      }
    },
  );

  it('takes --help among other flags, and `help COMMAND` prints the same', async () => {
    const alone = await sluice('run', '--help');
    expect(await sluice('run', 'in.jsonl', '--pipeline', 'docs', '--help')).toEqual(alone);
    expect(await sluice('help', 'run')).toEqual(alone);
  });

  it('reads -h after -- as an argument, not a request for help', async () => {
    const home = await mkdtemp(path.join(tmpdir(), 'sluice-help-'));
    try {
      const result = await sluice('status', '--home', home, '--', '-h');
      expect(result.code).toBe(2);
      expect(result.err).toEqual([`sluice status: no run -h in ${home} (list runs with: sluice status)`]);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('lists every command in the overall usage', () => {
    for (const { name } of COMMANDS) expect(USAGE).toContain(`\n  sluice ${name} `);
  });

  it('refuses help for an unknown command in one line, exit 2', async () => {
    expect(await sluice('help', 'nope')).toEqual({
      code: 2,
      out: [],
      err: [`sluice: unknown command "nope" (commands: ${COMMANDS.map((c) => c.name).join(', ')})`],
    });
  });

  it('prints the version from package.json with --version and -V', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    for (const flag of ['--version', '-V'])
      expect(await sluice(flag)).toEqual({ code: 0, out: [version], err: [] });
  });
});
