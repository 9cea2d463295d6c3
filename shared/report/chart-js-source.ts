import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

let cached: Promise<string> | undefined;

/**
 * The source of Chart.js's UMD build (`dist/chart.umd.min.js`, which defines the global
 * `Chart`), read once from the installed package so the report inlines it and needs no CDN.
 * The package's exports map does not expose `dist/`, so the file is found beside the entry
 * `require('chart.js')` resolves to. A bundle that leaves node_modules behind (a Lambda built
 * with esbuild) must ship the package (`nodeModules: ['chart.js']`) or pass the source to
 * writeRunReport itself.
 */
export function readChartJsUmd(): Promise<string> {
  cached ??= (async () => {
    const entry = createRequire(import.meta.url).resolve('chart.js');
    return readFile(path.join(path.dirname(entry), 'chart.umd.min.js'), 'utf8');
  })().catch((error: unknown) => {
    cached = undefined;
    throw new Error(
      `cannot read Chart.js's UMD build from the chart.js package: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  });
  return cached;
}
