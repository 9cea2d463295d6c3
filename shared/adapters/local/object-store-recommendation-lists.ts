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
import type { ObjectStore } from '../../ports/object-store.ts';

const decoder = new TextDecoder();

/** What one unit's object holds: its users' lists by user id. */
interface UnitListsObject {
  readonly lists: Record<string, CompactList>;
}

/**
 * (secondary adapter) RecommendationLists in the object store, for local runs (`sluice
 * run` and `sluice recommend` on one machine): one JSON object per similarity unit under
 * `runs/<pipeline>/<runId>/recommend/lists/<unitId>.json`, written whole when the unit's
 * writer finishes (a put replaces it, so a repeated unit writes the same object). A lookup
 * reads the run's unit objects until one holds the user: fine for a local home, where the
 * run's lists are at most a few hundred MB; deployed, the DynamoDB adapter reads by key.
 */
export class ObjectStoreRecommendationLists implements RecommendationLists {
  constructor(private readonly store: ObjectStore) {}

  unitWriter(pipeline: string, runId: string, unitId: string): UnitListsWriter {
    // No prototype: a user id such as `__proto__` is a key like any other.
    const lists: Record<string, CompactList> = Object.create(null);
    return {
      add: async (list: UserList) => {
        lists[list.userId] = compactList(list.items);
      },
      finish: async () => {
        const body: UnitListsObject = { lists };
        await this.store.put(
          `${localListsPrefix(pipeline, runId)}${unitId}.json`,
          JSON.stringify(body),
          'application/json',
        );
      },
    };
  }

  async getList(pipeline: string, runId: string, userId: string): Promise<ServedEntry[] | undefined> {
    for await (const info of this.store.list(localListsPrefix(pipeline, runId))) {
      if (!info.key.endsWith('.json')) continue;
      const bytes = await this.store.get(info.key);
      if (!bytes) continue;
      const { lists } = JSON.parse(decoder.decode(bytes)) as UnitListsObject;
      if (Object.hasOwn(lists, userId)) return expandList(lists[userId]!);
    }
    return undefined;
  }
}
