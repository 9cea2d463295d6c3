#!/usr/bin/python3
"""Independent peer of Sluice's user-based collaborative filtering (shared/jobs/recommend).

Written from the Recommendations contract in the design, not from the TypeScript code:
the same duplicate rule, cosine / pearson over whole user vectors, shrinkage, minimum
overlap, top-k neighbours (ties by user id), candidates held by at least minNeighbours
neighbours, the explicit / implicit prediction, top-N with popularity fill-in, and the
hot-item cap (sample = the maxItemUsers users with the lowest FNV-1a 32-bit hash of
"<item id>\\0<user id>", ties by user id). Similarities come from SciPy sparse products
over user blocks: the "straightforward single process" peer of the benchmark.

  /usr/bin/python3 scripts/peers/user-cf.py interactions.csv --value rating --timestamp ts \\
      --similarity pearson --out peer.json

Needs Debian's python3-numpy and python3-scipy. Output: JSON with the per-user lists
(item id, score, source, neighbours) and each user's neighbours, plus timings.
"""
import argparse
import csv
import json
import math
import sys
import time

import numpy as np
import scipy.sparse as sp


def fnv1a(text):
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def read(path, args):
    """(user, item) -> (value, timestamp or None), deduplicated by the contract."""
    pairs = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            user, item = row.get(args.user) or "", row.get(args.item) or ""
            if not user or not item:
                continue
            value = float(row[args.value]) if args.value else 1.0
            ts = None
            if args.timestamp and row.get(args.timestamp):
                ts = float(row[args.timestamp])
            key = (user, item)
            if key not in pairs:
                pairs[key] = (value, ts)
                continue
            kept_value, kept_ts = pairs[key]
            if args.value is None:
                if ts is not None and (kept_ts is None or ts > kept_ts):
                    pairs[key] = (kept_value, ts)
                continue
            if (ts is None) != (kept_ts is None):
                wins = ts is not None
            elif ts is not None and ts != kept_ts:
                wins = ts > kept_ts
            else:
                wins = value > kept_value
            if wins:
                pairs[key] = (value, ts)
    return pairs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("--user", default="user_id")
    p.add_argument("--item", default="item_id")
    p.add_argument("--value")
    p.add_argument("--timestamp")
    p.add_argument("--similarity", choices=["cosine", "pearson"])
    p.add_argument("--k", type=int, default=40)
    p.add_argument("--shrinkage", type=float, default=10.0)
    p.add_argument("--min-common", type=int, default=2)
    p.add_argument("--min-neighbours", type=int, default=2)
    p.add_argument("--max-item-users", type=int, default=5000)
    p.add_argument("--top-n", type=int, default=20)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--no-neighbours", action="store_true", help="leave neighbour lists out of the output")
    p.add_argument("--out")
    args = p.parse_args()
    similarity = args.similarity or ("pearson" if args.value else "cosine")
    explicit = args.value is not None

    started = time.perf_counter()
    pairs = read(args.csv, args)
    users = sorted({u for u, _ in pairs})
    items = sorted({i for _, i in pairs})
    u_index = {u: k for k, u in enumerate(users)}
    i_index = {i: k for k, i in enumerate(items)}
    rows = np.fromiter((u_index[u] for u, _ in pairs), dtype=np.int64, count=len(pairs))
    cols = np.fromiter((i_index[i] for _, i in pairs), dtype=np.int64, count=len(pairs))
    vals = np.fromiter((v for v, _ in pairs.values()), dtype=np.float64, count=len(pairs))
    read_s = time.perf_counter() - started

    t0 = time.perf_counter()
    n_users, n_items = len(users), len(items)
    R = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
    R.sort_indices()
    B = R.copy()
    B.data[:] = 1.0
    counts_per_user = np.diff(R.indptr)
    mu = np.asarray(R.sum(axis=1)).ravel() / np.maximum(counts_per_user, 1)
    W = R.copy()
    if similarity == "pearson":
        W.data = W.data - np.repeat(mu, counts_per_user)
    norms = np.sqrt(np.asarray(W.multiply(W).sum(axis=1)).ravel())

    # Hot-item cap: keep the sampled (user, item) entries only.
    Rc = R.tocsc()
    item_users = np.diff(Rc.indptr)
    keep = np.ones(R.nnz, dtype=bool)
    capped = 0
    if (item_users > args.max_item_users).any():
        Wcoo = W.tocoo()
        order = np.lexsort((Wcoo.row, Wcoo.col))
        entry_of = {}
        for e in order:
            entry_of.setdefault(int(Wcoo.col[e]), []).append(int(e))
        for item in np.nonzero(item_users > args.max_item_users)[0]:
            capped += 1
            entries = entry_of[int(item)]
            ranked = sorted(entries, key=lambda e: (fnv1a(items[item] + "\0" + users[Wcoo.row[e]]), Wcoo.row[e]))
            for e in ranked[args.max_item_users:]:
                keep[e] = False
        Wc = sp.csr_matrix((Wcoo.data[keep], (Wcoo.row[keep], Wcoo.col[keep])), shape=W.shape)
    else:
        Wc = W.copy()
    Bc = Wc.copy()
    Bc.data[:] = 1.0
    WcT = Wc.T.tocsr()
    BcT = Bc.T.tocsr()

    popularity = np.asarray(B.sum(axis=0)).ravel()
    popular = [i for i in np.lexsort((np.arange(n_items), -popularity)) if popularity[i] > 0]
    centred = R.copy()
    centred.data = centred.data - np.repeat(mu, counts_per_user)

    out_users = {}
    for start in range(0, n_users, args.block):
        stop = min(n_users, start + args.block)
        D = (Wc[start:stop] @ WcT).toarray()
        C = (Bc[start:stop] @ BcT).toarray()
        for local, u in enumerate(range(start, stop)):
            n = C[local]
            with np.errstate(divide="ignore", invalid="ignore"):
                s = D[local] / (norms[u] * norms)
            s[~np.isfinite(s)] = 0.0
            s = s * n / (n + args.shrinkage)
            valid = (n >= args.min_common) & (s > 0)
            valid[u] = False
            if norms[u] == 0:
                valid[:] = False
            cand = np.nonzero(valid)[0]
            order = cand[np.lexsort((cand, -s[cand]))][: args.k]
            sims = s[order]
            held = set(R.indices[R.indptr[u]:R.indptr[u + 1]].tolist())
            ranked = []
            if len(order) > 0:
                holders = np.asarray(B[order].sum(axis=0)).ravel()
                if explicit:
                    num = np.asarray(sims @ centred[order].toarray()).ravel()
                    den = np.asarray(np.abs(sims) @ B[order].toarray()).ravel()
                else:
                    num = np.asarray(sims @ B[order].toarray()).ravel()
                items_ok = [i for i in np.nonzero(holders >= args.min_neighbours)[0] if i not in held]
                scored = []
                for i in items_ok:
                    score = mu[u] + num[i] / den[i] if explicit else num[i]
                    scored.append((-score, i, score, int(holders[i])))
                scored.sort()
                ranked = [(items[i], float(score), "cf", h) for _, i, score, h in scored[: args.top_n]]
            listed = {i_index[r[0]] for r in ranked}
            for i in popular:
                if len(ranked) >= args.top_n:
                    break
                if i in held or i in listed:
                    continue
                ranked.append((items[i], float(popularity[i]), "popular", 0))
            entry = {"list": [list(r) for r in ranked]}
            if not args.no_neighbours:
                entry["neighbours"] = [[users[v], float(sv)] for v, sv in zip(order, sims)]
            out_users[users[u]] = entry
    compute_s = time.perf_counter() - t0
    result = {
        "similarity": similarity,
        "feedback": "explicit" if explicit else "implicit",
        "settings": {
            "k": args.k, "shrinkage": args.shrinkage, "minCommonItems": args.min_common,
            "minNeighbours": args.min_neighbours, "maxItemUsers": args.max_item_users, "topN": args.top_n,
        },
        "cappedItems": capped,
        "interactions": len(pairs),
        "users": out_users,
        "seconds": {"read": round(read_s, 3), "compute": round(compute_s, 3)},
    }
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    print(json.dumps({"seconds": result["seconds"], "cappedItems": capped, "users": n_users}), file=sys.stderr)


if __name__ == "__main__":
    main()
