import { readFileSync } from 'node:fs';
import { similarityPostings } from '../../shared/jobs/recommend/hot-item-cap.ts';
import { type Interaction, parseInteraction } from '../../shared/jobs/recommend/interaction.ts';
import { buildInteractionIndex } from '../../shared/jobs/recommend/interaction-index.ts';
import { type Feedback, InteractionLogBuilder } from '../../shared/jobs/recommend/interaction-log.ts';
import type { RecommendInputFields, Similarity } from '../../shared/jobs/recommend/recommend-config.ts';
import { UserCfShard } from '../../shared/jobs/recommend/user-cf.ts';

/** Interactions from a small CSV with a header (no quoting: the generator writes none). */
export function readInteractionsCsv(file: string, fields: RecommendInputFields): Interaction[] {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const names = header!.split(',');
  return lines.map((line) => {
    const record = Object.fromEntries(line.split(',').map((value, k) => [names[k]!, value]));
    const parsed = parseInteraction(record, fields);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.interaction;
  });
}

/** Shorthand for hand-written cases: [user, item, value?, timestamp?]. */
export function interactions(rows: readonly (readonly [string, string, number?, number?])[]): Interaction[] {
  return rows.map(([userId, itemId, value, timestamp]) => ({
    userId,
    itemId,
    value: value ?? 1,
    ...(timestamp === undefined ? {} : { timestamp }),
  }));
}

export interface CfCase {
  readonly feedback: Feedback;
  readonly similarity: Similarity;
  readonly k?: number;
  readonly shrinkage?: number;
  readonly minCommonItems?: number;
  readonly minNeighbours?: number;
  readonly maxItemUsers?: number;
  readonly topN?: number;
}

/** Index, postings and a shard computer over all users, with the contract's defaults unless given. */
export function cfOver(rows: Iterable<Interaction>, c: CfCase) {
  const builder = new InteractionLogBuilder(c.feedback);
  for (const row of rows) builder.add(row);
  const { log, duplicates } = builder.build();
  const index = buildInteractionIndex(log);
  const postings = similarityPostings(index, c.similarity, c.maxItemUsers ?? 5000);
  const shard = new UserCfShard(index, postings, {
    k: c.k ?? 40,
    shrinkage: c.shrinkage ?? 10,
    minCommonItems: c.minCommonItems ?? 2,
    minNeighbours: c.minNeighbours ?? 2,
    topN: c.topN ?? 20,
  });
  const user = (id: string) => {
    const u = index.userIds.indexOf(id);
    if (u < 0) throw new Error(`no user ${id}`);
    return u;
  };
  const neighboursOf = (id: string) =>
    shard
      .neighboursOf(user(id))
      .map((n) => ({ user: index.userIds[n.user]!, similarity: n.similarity, common: n.common }));
  const recommend = (id: string) => {
    const list = shard.recommend(user(id));
    return Array.from(list.items, (item, r) => ({
      item: index.itemIds[item]!,
      score: list.scores[r]!,
      source: r < list.cfCount ? 'cf' : 'popular',
      neighbours: list.neighbours[r]!,
    }));
  };
  return { index, postings, shard, duplicates, neighboursOf, recommend, user };
}
