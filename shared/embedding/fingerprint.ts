import { createHash } from 'node:crypto';
import type { ChunkingOptions } from './chunker.ts';

/** Whitespace-normalised, NFC text: edits that change nothing a model sees keep the same hash. */
export function normaliseText(text: string): string {
  return text.normalize('NFC').replace(/\s+/g, ' ').trim();
}

/** sha256 of normalised text + model id + chunking parameters: the chunk's content identity. */
export function chunkFingerprint(text: string, model: string, chunking: ChunkingOptions): string {
  return createHash('sha256')
    .update(normaliseText(text))
    .update('\u0000')
    .update(model)
    .update('\u0000')
    .update(`${chunking.maxTokens}/${chunking.overlapTokens}`)
    .digest('hex');
}
