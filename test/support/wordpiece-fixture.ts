/**
 * A small BERT-style WordPiece `tokenizer.json`, built here so tests need no download:
 * BERT normaliser (lower case, CJK spacing), BERT pre-tokenizer, and a vocabulary of a
 * few whole words, some `##` suffixes and every ASCII letter, digit and punctuation mark.
 */
export function wordPieceTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  const add = (token: string) => {
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  };
  for (const special of ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']) add(special);
  for (const word of ['the', 'queue', 'holds', 'message', 'embed', 'token', 'a', 'of', 'and', 'is'])
    add(word);
  for (const suffix of ['##s', '##ing', '##ed', '##ding', '##ize']) add(suffix);
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (const ch of chars) {
    add(ch);
    add(`##${ch}`);
  }
  for (const ch of '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~') add(ch);
  for (const ch of '東京都') add(ch);
  return {
    version: '1.0',
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}
