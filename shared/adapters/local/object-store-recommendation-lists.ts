import {
  type CompactList,
  compactList,
  expandList,
  localListsPrefix,
  type RecommendationLists,
  type ServedEntry,
  type UnitListsWriter,
  type UserList,
} from '../../jobs/recommend/recommendation-lists.ts';
import type { ObjectStore, ObjectWrite } from '../../ports/object-store.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of lines a writer gathers before handing them to the object write. */
const FLUSH_BYTES = 1 << 20;

/**
 * (secondary adapter) RecommendationLists in the object store, for local runs (`sluice
 * run` and `sluice recommend` on one machine): one object per similarity unit,
 * `runs/<pipeline>/<runId>/recommend/lists/<unitId>.jsonl`, a line `[userId, list]` per
 * user, streamed (a unit never holds all its users' lists) and in place only when the
 * writer finishes (the store's write-then-rename, or one put where the store has no
 * streamed write), so a repeated unit replaces it with the same object. A lookup reads the
 * run's unit objects until one holds the user, matching the line's start before parsing
 * it: fine for a local home; deployed, the DynamoDB adapter reads by key. It deletes nothing
 * (the ObjectStore port has no delete, and a unit object holds many users): `sluice gc`
 * removes the lists of runs no reader serves again (cli/gc/local-gc.ts).
 */
export class ObjectStoreRecommendationLists implements RecommendationLists {
  constructor(private readonly store: ObjectStore) {}

  unitWriter(pipeline: string, runId: string, unitId: string): UnitListsWriter {
    const key = `${localListsPrefix(pipeline, runId)}${unitId}.jsonl`;
    const store = this.store;
    let lines: string[] = [];
    let pendingBytes = 0;
    let open: Promise<ObjectWrite> | undefined;
    const whole: Uint8Array[] = [];
    const flush = async () => {
      if (lines.length === 0) return;
      const bytes = encoder.encode(lines.join(''));
      lines = [];
      pendingBytes = 0;
      if (!store.openWrite) {
        whole.push(bytes);
        return;
      }
      open ??= store.openWrite(key, 'application/x-ndjson');
      await (await open).write(bytes);
    };
    return {
      add: async (list: UserList) => {
        const line = `${JSON.stringify([list.userId, compactList(list.items)])}\n`;
        lines.push(line);
        pendingBytes += line.length;
        if (pendingBytes >= FLUSH_BYTES) await flush();
      },
      finish: async () => {
        await flush();
        if (open) await (await open).finish();
        else await store.put(key, Buffer.concat(whole), 'application/x-ndjson');
      },
      abort: async () => {
        lines = [];
        if (open) await (await open).abort();
      },
    };
  }

  async getList(pipeline: string, runId: string, userId: string): Promise<ServedEntry[] | undefined> {
    // A user's line starts with its id as JSON: found without parsing the other lines.
    const start = `[${JSON.stringify(userId)},`;
    for await (const info of this.store.list(localListsPrefix(pipeline, runId))) {
      if (!info.key.endsWith('.jsonl')) continue;
      const bytes = await this.store.get(info.key);
      if (!bytes) continue;
      const text = decoder.decode(bytes);
      const at = text.startsWith(start) ? 0 : text.indexOf(`\n${start}`) + 1;
      if (at === 0 && !text.startsWith(start)) continue;
      const end = text.indexOf('\n', at);
      const [, list] = JSON.parse(text.slice(at, end < 0 ? undefined : end)) as [string, CompactList];
      return expandList(list);
    }
    return undefined;
  }
}
