/**
 * Writes a synthetic interaction log (user, item, rating, time) as CSV, deterministically
 * (seeded), so collaborative filtering has real structure to find and the planner real
 * skew to balance: users and items belong to latent taste clusters (a user accepts an
 * item with a probability that grows with the dot product of their factor vectors), item
 * popularity is Zipf-shaped, user activity is log-normal, and a few power users hold a
 * large share of the catalogue. About 2% of interactions are re-ratings of an earlier
 * pair (later timestamp), to exercise duplicate handling.
 *
 *   npx tsx events/generate-interactions.ts                      # the committed sample
 *   npx tsx events/generate-interactions.ts --users 200000 --items 50000 \
 *     --interactions 10000000 --out /tmp/interactions-10m.csv    # the benchmark's scale
 *   ... --implicit                                               # no rating column
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { seededRandom } from './generate-samples.ts';

export interface InteractionModel {
  readonly users: number;
  readonly items: number;
  /** Target total (before duplicates); per-user counts are log-normal around the mean. */
  readonly interactions: number;
  /** Users with about `powerUserShare` of the catalogue each. @default 3 */
  readonly powerUsers?: number;
  /** @default 0.4 */
  readonly powerUserShare?: number;
  /** Zipf exponent of item popularity. @default 1.0 */
  readonly zipf?: number;
  /** Latent taste clusters. @default 10 */
  readonly clusters?: number;
  /** Write ratings (1..5); without, the log is implicit (clicks). @default true */
  readonly explicit?: boolean;
  /** @default 17 */
  readonly seed?: number;
}

export interface GeneratedInteraction {
  readonly user_id: string;
  readonly item_id: string;
  readonly rating?: number;
  readonly ts: number;
}

const FACTORS = 16;
const START = Date.UTC(2026, 0, 1) / 1000;
const SPAN_SECONDS = 90 * 86_400;

/** Streams the interactions user by user (ids zero-padded, so string order is numeric order). */
export function* generateInteractions(model: InteractionModel): Generator<GeneratedInteraction> {
  const rand = seededRandom(model.seed ?? 17);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const clusters = model.clusters ?? 10;
  const centres = Array.from({ length: clusters }, () => unit(Array.from({ length: FACTORS }, gaussian)));
  const factorOf = () => {
    const centre = centres[Math.floor(rand() * clusters)]!;
    return unit(centre.map((c) => c + 0.3 * gaussian()));
  };
  const itemFactors = Array.from({ length: model.items }, factorOf);
  // Popularity rank is independent of the cluster: every taste has hits and a long tail.
  const byRank = shuffled(model.items, rand);
  const s = model.zipf ?? 1.0;
  const cdf = new Float64Array(model.items);
  let total = 0;
  for (let r = 0; r < model.items; r++) {
    total += 1 / (r + 1) ** s;
    cdf[r] = total;
  }
  const drawItem = () => {
    const x = rand() * total;
    let low = 0;
    let high = model.items - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cdf[mid]! < x) low = mid + 1;
      else high = mid;
    }
    return byRank[low]!;
  };
  const powerUsers = new Set(shuffled(model.users, rand).slice(0, model.powerUsers ?? 3));
  const powerCount = Math.floor(model.items * (model.powerUserShare ?? 0.4));
  const mean = model.interactions / model.users;
  const userWidth = String(model.users - 1).length;
  const itemWidth = String(model.items - 1).length;
  const explicit = model.explicit ?? true;
  for (let u = 0; u < model.users; u++) {
    const taste = factorOf();
    const wanted = powerUsers.has(u)
      ? powerCount
      : Math.max(
          1,
          Math.min(Math.floor(model.items / 4), Math.round(Math.exp(Math.log(mean) - 0.5 + gaussian()))),
        );
    const chosen = new Map<number, number>();
    for (let attempt = 0; chosen.size < wanted && attempt < wanted * 60; attempt++) {
      const item = drawItem();
      if (chosen.has(item)) continue;
      const affinity = dot(taste, itemFactors[item]!);
      if (rand() < 1 / (1 + Math.exp(-14 * (affinity - 0.55)))) chosen.set(item, affinity);
    }
    const userId = `u${String(u).padStart(userWidth, '0')}`;
    const times = Array.from(chosen.keys(), () => START + Math.floor(rand() * SPAN_SECONDS)).sort(
      (a, b) => a - b,
    );
    let k = 0;
    for (const [item, affinity] of chosen) {
      const ts = times[k++]!;
      const itemId = `i${String(item).padStart(itemWidth, '0')}`;
      const rating = () =>
        Math.max(1, Math.min(5, Math.round(3 + 2.2 * (affinity - 0.3) + 0.7 * gaussian())));
      yield explicit
        ? { user_id: userId, item_id: itemId, rating: rating(), ts }
        : { user_id: userId, item_id: itemId, ts };
      if (rand() < 0.02) {
        const later = ts + 1 + Math.floor(rand() * 86_400);
        yield explicit
          ? { user_id: userId, item_id: itemId, rating: rating(), ts: later }
          : { user_id: userId, item_id: itemId, ts: later };
      }
    }
  }
}

/** CSV with a header: user_id,item_id,rating,ts (rating omitted for implicit logs). */
export async function writeInteractionsCsv(file: string, model: InteractionModel): Promise<number> {
  const out = createWriteStream(file);
  const explicit = model.explicit ?? true;
  let lines = 0;
  let pending: string[] = [explicit ? 'user_id,item_id,rating,ts' : 'user_id,item_id,ts'];
  const flush = async () => {
    if (!out.write(`${pending.join('\n')}\n`))
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    pending = [];
  };
  for (const row of generateInteractions(model)) {
    pending.push(
      explicit
        ? `${row.user_id},${row.item_id},${row.rating},${row.ts}`
        : `${row.user_id},${row.item_id},${row.ts}`,
    );
    lines++;
    if (pending.length >= 10_000) await flush();
  }
  if (pending.length > 0) await flush();
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return lines;
}

function unit(v: number[]): number[] {
  const norm = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0)) || 1;
  return v.map((x) => x / norm);
}

function dot(a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  for (let k = 0; k < a.length; k++) sum += a[k]! * b[k]!;
  return sum;
}

function shuffled(n: number, rand: () => number): number[] {
  const order = Array.from({ length: n }, (_, k) => k);
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(rand() * (k + 1));
    [order[k], order[j]] = [order[j]!, order[k]!];
  }
  return order;
}

/** The committed sample: 2,000 users, 500 items, about 46,500 interactions (75,000 wanted; tastes run out of items), explicit. */
export const SAMPLE_MODEL: InteractionModel = {
  users: 2000,
  items: 500,
  interactions: 75_000,
  powerUsers: 3,
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      users: { type: 'string' },
      items: { type: 'string' },
      interactions: { type: 'string' },
      'power-users': { type: 'string' },
      seed: { type: 'string' },
      implicit: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const model: InteractionModel = {
    users: Number(values.users ?? SAMPLE_MODEL.users),
    items: Number(values.items ?? SAMPLE_MODEL.items),
    interactions: Number(values.interactions ?? SAMPLE_MODEL.interactions),
    powerUsers: Number(values['power-users'] ?? SAMPLE_MODEL.powerUsers),
    seed: Number(values.seed ?? 17),
    explicit: !values.implicit,
  };
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = values.out ?? path.join(here, 'data', 'interactions-sample.csv');
  const lines = await writeInteractionsCsv(file, model);
  console.log(`wrote ${lines} interactions (${model.users} users, ${model.items} items) to ${file}`);
}
