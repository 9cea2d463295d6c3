import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as encodeCl100k } from 'gpt-tokenizer/encoding/cl100k_base';
import { encode as encodeO200k } from 'gpt-tokenizer/encoding/o200k_base';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';

const samples = JSON.parse(
  readFileSync(
    path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'token-samples.json'),
    'utf8',
  ),
) as Record<string, string[]>;

interface Comparison {
  readonly reference: string;
  readonly category: string;
  readonly documents: number;
  /** Estimated / real tokens: the smallest over the documents must stay >= 1. */
  readonly minRatio: number;
  readonly meanRatio: number;
  readonly underestimated: number;
}

/**
 * How the default token estimator compares with real tokenizers on English, code and
 * CJK text: it must never count fewer tokens than the model will see. The references are
 * the BPE vocabularies shipped in gpt-tokenizer (cl100k_base, o200k_base); a BERT
 * WordPiece vocabulary is not available offline, so pipelines that need exact counts
 * configure `chunking.tokenizer` with their model's tokenizer.json.
 */
export async function runTokenEstimateBench() {
  const estimator = new EstimatingTokenCounter();
  const references: [string, (text: string) => number][] = [
    ['cl100k_base', (t) => encodeCl100k(t).length],
    ['o200k_base', (t) => encodeO200k(t).length],
  ];
  const comparisons: Comparison[] = [];
  for (const [reference, count] of references) {
    for (const [category, texts] of Object.entries(samples)) {
      const ratios = texts.map((text) => estimator.count(text) / count(text));
      comparisons.push({
        reference,
        category,
        documents: texts.length,
        minRatio: Math.min(...ratios),
        meanRatio: ratios.reduce((a, b) => a + b, 0) / ratios.length,
        underestimated: ratios.filter((r) => r < 1).length,
      });
    }
  }
  return {
    name: 'token-estimate' as const,
    estimator: estimator.name,
    comparisons,
    neverUnderestimates: comparisons.every((c) => c.underestimated === 0),
  };
}
