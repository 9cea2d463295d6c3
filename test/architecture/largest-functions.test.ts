import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { functionsInSource, largestFunctions, parseArguments } from '../../scripts/largest-functions.ts';

const SAMPLE = [
  '/** TSDoc is not counted. */',
  'export function declared(a: number): number {',
  '  const double = (x: number) => x * 2;',
  '  return [a].map((x) => x + 1).map(double)[0]!;',
  '}',
  'export const arrow = async () => {',
  '  return 1;',
  '};',
  'export class Store {',
  '  constructor(readonly name: string) {}',
  '  get label(): string {',
  '    return this.name;',
  '  }',
  '  handle = (event: string): string => event;',
  '  run(): void {',
  '    function nested(): void {}',
  '    nested();',
  '  }',
  '}',
  'interface Port { read(): string }',
  'export const handlers = { onEvent: function named() { return 0; } };',
].join('\n');

describe('largest functions', () => {
  it('names declarations, methods, accessors, class fields and named arrows, with their line spans', () => {
    const found = functionsInSource('sample.ts', SAMPLE).map(({ name, line, lines }) => ({
      name,
      line,
      lines,
    }));
    expect(found).toEqual([
      { name: 'declared', line: 2, lines: 4 },
      { name: 'declared/double', line: 3, lines: 1 },
      { name: 'arrow', line: 6, lines: 3 },
      { name: 'Store.constructor', line: 10, lines: 1 },
      { name: 'Store.label', line: 11, lines: 3 },
      { name: 'Store.handle', line: 14, lines: 1 },
      { name: 'Store.run', line: 15, lines: 4 },
      { name: 'Store.run/nested', line: 16, lines: 1 },
      { name: 'onEvent', line: 21, lines: 1 },
    ]);
  });

  it('measures shared/, functions/, cli/ and infra/ but not test/ or bench/, longest first', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'sluice-largest-'));
    try {
      const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
      const files: Record<string, string> = {
        'shared/core/short.ts': `export function short(): void {\n${body(2)}\n}\n`,
        'infra/stack.ts': `export function long(): void {\n${body(20)}\n}\n`,
        'cli/mid.ts': `export const mid = () => {\n${body(8)}\n};\n`,
        'shared/types.d.ts': 'export declare function declaredOnly(): void;\n',
        'test/huge.test.ts': `export function huge(): void {\n${body(90)}\n}\n`,
        'bench/huge.ts': `export function huge(): void {\n${body(90)}\n}\n`,
      };
      for (const [file, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(root, file)), { recursive: true });
        await writeFile(path.join(root, file), text);
      }
      expect(largestFunctions(root)).toEqual([
        { file: 'infra/stack.ts', name: 'long', line: 1, lines: 22 },
        { file: 'cli/mid.ts', name: 'mid', line: 1, lines: 10 },
        { file: 'shared/core/short.ts', name: 'short', line: 1, lines: 4 },
      ]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('reads the command line and refuses unknown options with a one-line reason', () => {
    expect(parseArguments(['/tmp/x', '--top', '5', '--json'], '/repo')).toEqual({
      root: '/tmp/x',
      top: 5,
      json: true,
    });
    expect(parseArguments([], '/repo')).toEqual({ root: '/repo', top: 30, json: false });
    expect(() => parseArguments(['--top', '0'], '/repo')).toThrow('--top takes a whole number');
    expect(() => parseArguments(['--depth'], '/repo')).toThrow('unknown option --depth');
  });
});
