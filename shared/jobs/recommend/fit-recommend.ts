import { EvaluationAccumulator, type EvaluationPartial, type HoldOut, splitHoldout } from './evaluation.ts';
import { similarityPostings } from './hot-item-cap.ts';
import type { Interaction } from './interaction.ts';
import { buildInteractionIndex, type InteractionIndex, popularityOrder } from './interaction-index.ts';
import { type Feedback, InteractionLogBuilder } from './interaction-log.ts';
import type { RecommendSettings, Similarity } from './recommend-config.ts';
import { estimateUserWork, planWorkShards, shardCountFor, type UserShard } from './shard-plan.ts';
import { popularityList, UserCfShard, type UserRecommendations } from './user-cf.ts';

/**
 * The stages' pure cores end to end in one process, in the order the job kind runs
 * them: deduplicate, hold out, index, cap, plan shards, compute each shard, evaluate.
 * For tests, the benchmark and small local runs; the job kind runs the same functions
 * across units.
 */
export interface FittedRecommendations {
  readonly index: InteractionIndex;
  readonly similarity: Similarity;
  readonly duplicates: number;
  readonly cappedItems: number;
  readonly shards: readonly UserShard[];
  readonly lists: readonly UserRecommendations[];
  /** Actual operations per shard, aligned with `shards`. */
  readonly shardOperations: readonly number[];
  readonly evaluation?: EvaluationPartial;
  readonly holdOut?: HoldOut;
}

export function fitRecommendations(
  interactions: Iterable<Interaction>,
  settings: Pick<RecommendSettings, 'neighbours' | 'output' | 'evaluation' | 'sharding'> & {
    readonly feedback: Feedback;
    readonly similarity: Similarity;
  },
  shardCount?: number,
): FittedRecommendations {
  const builder = new InteractionLogBuilder(settings.feedback);
  for (const interaction of interactions) builder.add(interaction);
  const { log, duplicates } = builder.build();
  const evaluate = settings.evaluation.holdoutFraction > 0;
  const { train, holdOut } = evaluate
    ? splitHoldout(log, settings.evaluation)
    : { train: log, holdOut: undefined };
  const index = buildInteractionIndex(train);
  const postings = similarityPostings(index, settings.similarity, settings.neighbours.maxItemUsers);
  const work = estimateUserWork(index, postings);
  const shards = planWorkShards(
    work,
    shardCount ?? shardCountFor(work, settings.sharding.targetUnitWork),
    settings.sharding.method,
  );
  const cf = { ...settings.neighbours, topN: settings.output.topN };
  const lists: UserRecommendations[] = new Array(index.userIds.length);
  const shardOperations: number[] = [];
  const accumulator = new EvaluationAccumulator(settings.output.topN, index.itemIds);
  const popular = popularityOrder(index);
  for (const shard of shards) {
    const computer = new UserCfShard(index, postings, cf);
    for (const user of shard.users) {
      const list = computer.recommend(user);
      lists[user] = list;
      if (holdOut) {
        const relevant = new Set(holdOut.items.subarray(holdOut.userPtr[user]!, holdOut.userPtr[user + 1]!));
        if (relevant.size > 0)
          accumulator.add(relevant, list.items, popularityList(index, popular, user, settings.output.topN));
      }
    }
    shardOperations.push(computer.operations);
  }
  return {
    index,
    similarity: settings.similarity,
    duplicates,
    cappedItems: postings.cappedItems,
    shards,
    lists,
    shardOperations,
    ...(holdOut ? { evaluation: accumulator.partial(), holdOut } : {}),
  };
}
