import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * The name the deployed finalize function ships Chart.js's UMD build under, beside its
 * bundled handler (`LAMBDA_TASK_ROOT`): esbuild bundles what the handler imports, not a
 * file it reads, so infra adds the file to the function's code (`bundledFiles`).
 */
export const CHART_JS_BUNDLED_FILE = 'chart.umd.min.js';

/** Where Chart.js's UMD build is: beside a Lambda handler that ships it, else in the installed package. */
function chartJsPath(): string {
  const taskRoot = process.env.LAMBDA_TASK_ROOT;
  if (taskRoot !== undefined) {
    const bundled = path.join(taskRoot, CHART_JS_BUNDLED_FILE);
    if (existsSync(bundled)) return bundled;
  }
  return chartJsPackagePath();
}

/** Chart.js's UMD build in the installed chart.js package (what infra ships to the finalize function). */
export function chartJsPackagePath(): string {
  const entry = createRequire(import.meta.url).resolve('chart.js');
  return path.join(path.dirname(entry), CHART_JS_BUNDLED_FILE);
}

let cached: Promise<string> | undefined;

/**
 * The source of Chart.js's UMD build (`dist/chart.umd.min.js`, which defines the global
 * `Chart`), read once so the report inlines it and needs no CDN: in a Lambda function that
 * ships it ({@link CHART_JS_BUNDLED_FILE} in `LAMBDA_TASK_ROOT`, the finalize function), from
 * there; else from the installed package, whose exports map does not expose `dist/`, so the
 * file is found beside the entry `require('chart.js')` resolves to.
 */
export function readChartJsUmd(): Promise<string> {
  cached ??= (async () => readFile(chartJsPath(), 'utf8'))().catch((error: unknown) => {
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
