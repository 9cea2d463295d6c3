/**
 * Prints the endpoint images a stack deploys, per region: `npm run images` for every
 * region Sluice deploys to, `npm run images -- eu-west-1` for one. Versions are those
 * cdk.json pins (`sluice:teiVersion`, `sluice:xgboostVersion`), else the table's
 * defaults; `--tei-version 1.9` and `--xgboost-version 2.1-0` override them, as `-c` does.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { imageUriOf } from './image-table.ts';
import { DEPLOYABLE_REGIONS } from './registries.ts';
import { TEI_IMAGES } from './tei-images.ts';
import { XGBOOST_IMAGES } from './xgboost-images.ts';

const cdkJson = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cdk.json');
const context = JSON.parse(readFileSync(cdkJson, 'utf8')).context as Record<string, unknown>;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'tei-version': { type: 'string' }, 'xgboost-version': { type: 'string' } },
});
const teiVersion =
  values['tei-version'] ?? String(context[TEI_IMAGES.versionKey] ?? TEI_IMAGES.defaultVersion);
const xgboostVersion =
  values['xgboost-version'] ?? String(context[XGBOOST_IMAGES.versionKey] ?? XGBOOST_IMAGES.defaultVersion);

try {
  const regions = positionals.length > 0 ? positionals : DEPLOYABLE_REGIONS;
  console.log(`region\tTEI ${teiVersion}\tXGBoost ${xgboostVersion}`);
  for (const region of regions) {
    if (!DEPLOYABLE_REGIONS.includes(region)) {
      throw new Error(`Sluice does not deploy to ${region}: regions are ${DEPLOYABLE_REGIONS.join(', ')}`);
    }
    console.log(
      [
        region,
        imageUriOf(TEI_IMAGES, region, teiVersion),
        imageUriOf(XGBOOST_IMAGES, region, xgboostVersion),
      ].join('\t'),
    );
  }
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 2;
}
