import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { importCycles, importGraph, importsOf } from '../support/import-graph.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('import graph', () => {
  it('has no import cycle under shared/, functions/ and cli/, type-only imports included', () => {
    const graph = importGraph(ROOT, ['shared', 'functions', 'cli']);
    expect(graph.size).toBeGreaterThan(100);
    expect(importCycles(graph)).toEqual([]);
  });

  it('reads every kind of import statement, on one line or several', () => {
    const source = [
      "import { a } from './a.ts';",
      "import type { B } from './b.ts';",
      'import {',
      '  c,',
      '  type C,',
      "} from './c.ts';",
      "export { d } from './d.ts';",
      "export type { E } from './e.ts';",
      "import './f.ts';",
      "const g = await import('./g.ts');",
      "// import { h } from './h.ts';",
      "/** import { i } from './i.ts'; */",
      "const text = 'no import here';",
    ].join('\n');
    expect(importsOf(source).sort()).toEqual(
      ['./a.ts', './b.ts', './c.ts', './d.ts', './e.ts', './f.ts', './g.ts'].sort(),
    );
  });

  it('finds a cycle made of type-only imports', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-cycles-'));
    try {
      await writeFile(
        path.join(dir, 'records.ts'),
        "import { rule } from './rules.ts';\nexport type R = 1;\n",
      );
      await writeFile(
        path.join(dir, 'rules.ts'),
        "import type { R } from './records.ts';\nexport const rule = 1;\n",
      );
      await writeFile(path.join(dir, 'leaf.ts'), "import { rule } from './rules.ts';\n");
      expect(importCycles(importGraph(dir, ['.']))).toEqual([['records.ts', 'rules.ts']]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
