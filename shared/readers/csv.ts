/**
 * RFC 4180 field splitting for one logical CSV record (which may span physical lines
 * when a quoted field holds newlines). Returns undefined while a quote is still open.
 */
export function parseCsvRecord(text: string): string[] | undefined {
  const fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
      } else {
        field += ch;
      }
    } else if (ch === '"' && field.length === 0) {
      inQuotes = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
    } else {
      field += ch;
    }
    i += 1;
  }
  if (inQuotes) return undefined;
  fields.push(field);
  return fields;
}
