/** Drains an async iterable of byte chunks into chunks (to see the streaming) and text. */
export async function drain(
  source: AsyncIterable<Uint8Array>,
): Promise<{ chunks: Uint8Array[]; text: string }> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return { chunks, text: Buffer.concat(chunks).toString('utf8') };
}
