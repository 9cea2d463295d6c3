import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError } from '../../shared/errors/errors.ts';

/** One input as the model takes it: token ids with the special tokens, and their segment ids. */
export interface EncodedInput {
  readonly ids: readonly number[];
  readonly typeIds: readonly number[];
}

/** A right-padded batch, `[batch, sequence]` row-major. */
export interface PaddedBatch {
  readonly batch: number;
  readonly sequence: number;
  readonly inputIds: Int32Array;
  /** 1 for a real token, 0 for padding. */
  readonly attentionMask: Uint8Array;
  readonly tokenTypeIds: Int32Array;
}

const tokenContent = (token: unknown): string | undefined =>
  typeof token === 'string'
    ? token
    : typeof (token as { content?: unknown } | null)?.content === 'string'
      ? (token as { content: string }).content
      : undefined;

/** Where `run` first appears in `list` as a contiguous run, or -1. */
function indexOfRun(list: readonly number[], run: readonly number[]): number {
  for (let p = 0; p + run.length <= list.length; p++) {
    if (run.every((id, i) => list[p + i] === id)) return p;
  }
  return -1;
}

/**
 * Tokenizes inputs as the model was trained to see them, with Tokenizers.js (the library
 * `TokenizerJsonCounter` uses for exact chunk sizes): special tokens from the
 * `tokenizer.json` post-processor, then truncation to `maxLength` tokens as transformers
 * truncates one sequence: the text's tokens are cut, the special tokens around them kept.
 */
export class TruncatingEncoder {
  readonly maxLength: number;
  /** The id padding positions get (masked out, so only its range matters). */
  readonly padId: number;
  private readonly tokenizer: Tokenizer;
  /** Special tokens the post-processor puts before and after the text's tokens. */
  private readonly prefix: number;
  private readonly suffix: number;

  /**
   * @param where names the folder in errors
   * @throws ConfigError when the tokenizer cannot be built, or `maxLength` leaves no room for text
   */
  constructor(tokenizerJson: object, tokenizerConfig: object, maxLength: number, where: string) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson as never, tokenizerConfig as never);
    } catch (error) {
      throw new ConfigError(
        `${where}: tokenizer.json is not a usable tokenizer: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    this.maxLength = maxLength;
    // Where the text sits among the special tokens: encode one word with and without them.
    const bare = this.tokenizer.encode('a', { add_special_tokens: false }).ids;
    const full = this.tokenizer.encode('a', { add_special_tokens: true }).ids;
    const at = indexOfRun(full, bare);
    this.prefix = Math.max(at, 0);
    this.suffix = full.length - bare.length - this.prefix;
    if (maxLength <= this.prefix + this.suffix)
      throw new ConfigError(
        `${where}: a max length of ${maxLength} tokens leaves no room for text beside ${this.prefix + this.suffix} special tokens`,
      );
    const padding = (tokenizerJson as { padding?: { pad_id?: unknown } | null }).padding;
    const padToken = tokenContent((tokenizerConfig as { pad_token?: unknown }).pad_token);
    this.padId =
      (typeof padding?.pad_id === 'number' ? padding.pad_id : undefined) ??
      (padToken === undefined ? undefined : this.tokenizer.token_to_id(padToken)) ??
      this.tokenizer.token_to_id('[PAD]') ??
      this.tokenizer.token_to_id('<pad>') ??
      0;
  }

  /** The ids the model sees for `text`, at most `maxLength` of them. */
  encode(text: string): EncodedInput {
    const encoding = this.tokenizer.encode(text, { add_special_tokens: true, return_token_type_ids: true });
    const ids = encoding.ids;
    const typeIds = encoding.token_type_ids ?? new Array<number>(ids.length).fill(0);
    if (ids.length <= this.maxLength) return { ids, typeIds };
    const keep = this.maxLength - this.prefix - this.suffix;
    const cut = <T>(list: readonly T[]) => [
      ...list.slice(0, this.prefix + keep),
      ...list.slice(list.length - this.suffix),
    ];
    return { ids: cut(ids), typeIds: cut(typeIds) };
  }
}

/** Pads `inputs` on the right to the longest of them. */
export function padBatch(inputs: readonly EncodedInput[], padId: number): PaddedBatch {
  const sequence = inputs.reduce((longest, input) => Math.max(longest, input.ids.length), 0);
  const batch = inputs.length;
  const inputIds = new Int32Array(batch * sequence).fill(padId);
  const attentionMask = new Uint8Array(batch * sequence);
  const tokenTypeIds = new Int32Array(batch * sequence);
  inputs.forEach((input, b) => {
    const row = b * sequence;
    inputIds.set(input.ids, row);
    tokenTypeIds.set(input.typeIds, row);
    attentionMask.fill(1, row, row + input.ids.length);
  });
  return { batch, sequence, inputIds, attentionMask, tokenTypeIds };
}
