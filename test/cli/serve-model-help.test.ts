import { describe, expect, it } from 'vitest';
import { parseServeModelArgs } from '../../cli/commands/serve-model.ts';
import { SERVE_MODEL_BACKENDS, SERVE_MODEL_OPTIONS } from '../../cli/commands/serve-model-flags.ts';
import { sluice } from '../support/cli.ts';

/** What parseArgs says of a flag the parser does not take, or takes with(out) a value. */
const NOT_TAKEN = /Unknown option|argument missing|does not take an argument/;

/** The flags `sluice serve-model --help` lists in its synopsis, with the value each names. */
async function listedFlags(): Promise<Map<string, string | undefined>> {
  const help = await sluice('serve-model', '--help');
  expect(help.code).toBe(0);
  const synopsis = help.out[0]!.split('\n\n')[0]!;
  return new Map([...synopsis.matchAll(/\[--([a-z-]+)(?: ([^\]]+))?\]/g)].map((m) => [m[1]!, m[2]]));
}

/** The arguments' parse error, or '' when they parsed. */
async function parseError(args: string[]): Promise<string> {
  try {
    await parseServeModelArgs(args);
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}

describe('sluice serve-model --help', () => {
  it('lists every flag the parser takes, each as it takes it (with a value or without)', async () => {
    const listed = await listedFlags();
    expect([...listed.keys()]).toEqual(Object.keys(SERVE_MODEL_OPTIONS));
    for (const [flag, value] of listed) {
      const args = value === undefined ? [`--${flag}`] : [`--${flag}`, '1'];
      expect(await parseError(args), flag).not.toMatch(NOT_TAKEN);
    }
    // The check can fail: a flag the parser lacks, or a value where it takes none.
    expect(await parseError(['--nope'])).toMatch(NOT_TAKEN);
    expect(await parseError(['--serverless=1'])).toMatch(NOT_TAKEN);
  });

  it('lists every backend --backend takes, rules-chat and its fault flags included', async () => {
    const listed = await listedFlags();
    expect(listed.get('backend')?.split('|')).toEqual([...SERVE_MODEL_BACKENDS]);
    expect(SERVE_MODEL_BACKENDS).toContain('rules-chat');
    for (const backend of SERVE_MODEL_BACKENDS)
      expect(await parseError(['--backend', backend]), backend).not.toMatch(/--backend must be one of/);
    expect(await parseError(['--backend', 'nope'])).toMatch(/--backend must be one of/);
    expect(listed.get('invalid-json-rate')).toBe('R');
    expect(listed.get('throttle-rate')).toBe('R');
    expect(
      await parseError(['--backend', 'rules-chat', '--invalid-json-rate', '0.2', '--throttle-rate', '0.1']),
    ).toBe('');
  });

  it('says what rules-chat and its fault flags do', async () => {
    const text = (await sluice('help', 'serve-model')).out[0]!;
    expect(text).toMatch(/rules-chat answers chat completions/);
    expect(text).toMatch(/--invalid-json-rate R, --throttle-rate R {2}rules-chat only/);
  });
});
