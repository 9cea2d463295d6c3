import type { Node } from 'constructs';
import { DEFAULT_STACK_NAME, deploymentNames } from './deployment-names.ts';

/** Context keys the app reads (`cdk.json` or `-c key=value`). */
export const CONTEXT_KEYS = {
  pipelines: 'sluice:pipelines',
  teiImageUri: 'sluice:teiImageUri',
  embeddingInstanceType: 'sluice:embeddingInstanceType',
  hfModelId: 'sluice:hfModelId',
  xgboostImageUri: 'sluice:xgboostImageUri',
  scoringEndpoints: 'sluice:scoringEndpoints',
  stackName: 'sluice:stackName',
} as const;

/** Pipelines deployed when context names none: one embed and one score pipeline. */
export const DEFAULT_PIPELINES: readonly string[] = ['docs', 'credit-risk'];

export interface SluiceContext {
  /** Pipeline config names under `pipelines/`. @default ['docs', 'credit-risk'] */
  readonly pipelines: readonly string[];
  readonly teiImageUri: string;
  /** @default - each pipeline's `endpoint.instanceType` */
  readonly embeddingInstanceType: string | undefined;
  /** Overrides every pipeline's `endpoint.model` as the TEI model id. @default - each pipeline's `endpoint.model` */
  readonly hfModelId: string | undefined;
  /** SageMaker's built-in XGBoost image (region-specific); required when a score pipeline is deployed. */
  readonly xgboostImageUri: string | undefined;
  /** Whether the scoring endpoints are deployed (false for the first deployment of a stack). @default true */
  readonly scoringEndpoints: boolean;
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
  const pipelines = parseNames(node.tryGetContext(CONTEXT_KEYS.pipelines) ?? DEFAULT_PIPELINES);
  const teiImageUri = optionalString(node, CONTEXT_KEYS.teiImageUri);
  if (!teiImageUri) {
    throw new Error(
      `context ${CONTEXT_KEYS.teiImageUri} is required: pass -c ${CONTEXT_KEYS.teiImageUri}=<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`,
    );
  }
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
    teiImageUri,
    embeddingInstanceType,
    hfModelId: optionalString(node, CONTEXT_KEYS.hfModelId),
    xgboostImageUri: optionalString(node, CONTEXT_KEYS.xgboostImageUri),
    scoringEndpoints: optionalBoolean(node, CONTEXT_KEYS.scoringEndpoints) ?? true,
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

/** A boolean from cdk.json, or `true`/`false` as `-c` passes it (a string). */
function optionalBoolean(node: Node, key: string): boolean | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new Error(`context ${key} must be true or false, got ${JSON.stringify(value)}`);
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
