import type { Node } from 'constructs';
import { DEFAULT_STACK_NAME, deploymentNames } from './deployment-names.ts';

/** Context keys the app reads (`cdk.json` or `-c key=value`). */
export const CONTEXT_KEYS = {
  pipelines: 'sluice:pipelines',
  teiVersion: 'sluice:teiVersion',
  teiImageUri: 'sluice:teiImageUri',
  embeddingInstanceType: 'sluice:embeddingInstanceType',
  hfModelId: 'sluice:hfModelId',
  xgboostVersion: 'sluice:xgboostVersion',
  xgboostImageUri: 'sluice:xgboostImageUri',
  tgiVersion: 'sluice:tgiVersion',
  tgiImageUri: 'sluice:tgiImageUri',
  stackName: 'sluice:stackName',
} as const;

/**
 * Keys the app no longer reads, with what replaced them: passing one fails synth in one
 * line instead of being silently ignored.
 */
const RETIRED_KEYS: Readonly<Record<string, string>> = {
  'sluice:scoringEndpoints':
    'the stack now uploads the committed model archives itself, so one deploy creates the scoring endpoints (docs/infra.md, Deploy); to leave scoring out, deploy only embed pipelines (-c sluice:pipelines=docs)',
};

/** Pipelines deployed when context names none: one embed and one score pipeline. */
export const DEFAULT_PIPELINES: readonly string[] = ['docs', 'credit-risk'];

export interface SluiceContext {
  /** Pipeline config names under `pipelines/`. @default ['docs', 'credit-risk'] */
  readonly pipelines: readonly string[];
  /** TEI version in `infra/images/tei-images.ts`. @default - the table's default */
  readonly teiVersion: string | undefined;
  /** An explicit TEI image URI in the stack's region (escape hatch). @default - the table's image */
  readonly teiImageUri: string | undefined;
  /** @default - each pipeline's `endpoint.instanceType` */
  readonly embeddingInstanceType: string | undefined;
  /** Overrides every pipeline's `endpoint.model` as the TEI model id. @default - each pipeline's `endpoint.model` */
  readonly hfModelId: string | undefined;
  /** XGBoost image version in `infra/images/xgboost-images.ts`. @default - the table's default */
  readonly xgboostVersion: string | undefined;
  /** TGI version in `infra/images/llm-images.ts` (LLM endpoints of generate pipelines). @default - the table's default */
  readonly tgiVersion: string | undefined;
  /** An explicit TGI image URI in the stack's region (escape hatch). @default - the table's image */
  readonly tgiImageUri: string | undefined;
  /** An explicit XGBoost image URI in the stack's region (escape hatch). @default - the table's image */
  readonly xgboostImageUri: string | undefined;
  /**
   * Stack name; every account-unique resource name derives from it (`deploymentNames`).
   * @default 'Sluice'
   */
  readonly stackName: string;
}

/**
 * Reads and checks the app's context once. `-c` values arrive as strings, cdk.json
 * values as JSON, so `sluice:pipelines` accepts an array, a JSON array string or a
 * comma-separated list. Errors are one line naming the key and the fix.
 */
export function readContext(node: Node): SluiceContext {
  for (const [key, instead] of Object.entries(RETIRED_KEYS)) {
    if (node.tryGetContext(key) !== undefined)
      throw new Error(`context ${key} is no longer used: ${instead}`);
  }
  const pipelines = parseNames(node.tryGetContext(CONTEXT_KEYS.pipelines) ?? DEFAULT_PIPELINES);
  const embeddingInstanceType = optionalString(node, CONTEXT_KEYS.embeddingInstanceType);
  if (embeddingInstanceType !== undefined && !/^ml\.[a-z0-9]+\.[a-z0-9]+$/.test(embeddingInstanceType)) {
    throw new Error(
      `context ${CONTEXT_KEYS.embeddingInstanceType} "${embeddingInstanceType}" is not a SageMaker instance type such as ml.g5.xlarge`,
    );
  }
  const stackName = optionalString(node, CONTEXT_KEYS.stackName) ?? DEFAULT_STACK_NAME;
  deploymentNames(stackName); // a stack name that cannot name the resources fails here, naming the key
  return {
    pipelines,
    teiVersion: optionalString(node, CONTEXT_KEYS.teiVersion),
    teiImageUri: optionalString(node, CONTEXT_KEYS.teiImageUri),
    embeddingInstanceType,
    hfModelId: optionalString(node, CONTEXT_KEYS.hfModelId),
    xgboostVersion: optionalString(node, CONTEXT_KEYS.xgboostVersion),
    xgboostImageUri: optionalString(node, CONTEXT_KEYS.xgboostImageUri),
    tgiVersion: optionalString(node, CONTEXT_KEYS.tgiVersion),
    tgiImageUri: optionalString(node, CONTEXT_KEYS.tgiImageUri),
    stackName,
  };
}

function optionalString(node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string')
    throw new Error(`context ${key} must be a string, got ${JSON.stringify(value)}`);
  return value;
}

function parseNames(value: unknown): string[] {
  let names: unknown = value;
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('[')) {
      try {
        names = JSON.parse(text);
      } catch {
        throw new Error(`context ${CONTEXT_KEYS.pipelines} is not valid JSON: ${text}`);
      }
    } else {
      names = text.split(',').map((name) => name.trim());
    }
  }
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n !== '')) {
    throw new Error(
      `context ${CONTEXT_KEYS.pipelines} must be a non-empty list of pipeline names, e.g. ["docs"]`,
    );
  }
  if (new Set(names).size !== names.length) {
    throw new Error(`context ${CONTEXT_KEYS.pipelines} names a pipeline twice: ${names.join(', ')}`);
  }
  return names as string[];
}
