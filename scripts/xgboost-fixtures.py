#!/usr/bin/python3
"""Parity fixtures and benchmark inputs for Sluice's XGBoost JSON evaluator.

Trains small deterministic XGBoost models with XGBoost itself (Debian's
python3-xgboost: run with /usr/bin/python3, not a virtualenv's python) and writes,
per case, what the TypeScript evaluator must reproduce:

  model.json     XGBoost's own JSON save of the booster
  rows.csv       the rows to score, no header, an empty field = missing
  expected.csv   XGBoost's own predictions, full float32 precision, one line per row
                 (one value for regression and binary, one per class for multi:softprob)

Usage:
  /usr/bin/python3 scripts/xgboost-fixtures.py fixtures [--out events/fixtures/xgboost]
  /usr/bin/python3 scripts/xgboost-fixtures.py bench --out DIR [--rows N] [--trees N] [--depth N]

`bench` trains a larger binary model, writes model.json and rows.f64 (row-major
little-endian float64, NaN = missing), times XGBoost's predictor with nthread=1 on
those rows and writes timing.json and expected.f32 (its predictions).

If xgboost is not importable, the script exits with status 3 and one line on stderr.
"""

import argparse
import json
import os
import sys
import time

try:
    import numpy as np
    import xgboost as xgb
except ImportError as error:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        f"python xgboost is not available ({error}); install it with: apt-get install -y python3-xgboost\n"
    )
    sys.exit(3)

SEED = 20240611


def make_features(rng, rows, columns, missing_rate):
    """Mixed-scale features, some heavy tailed, with values missing at random."""
    x = rng.normal(size=(rows, columns))
    x[:, 1::4] = np.exp(x[:, 1::4])  # log-normal, always positive
    x[:, 2::4] = np.round(x[:, 2::4] * 3)  # few distinct values: many ties at split points
    x[:, 3::4] = x[:, 3::4] * 1000.0 + 5000.0  # large magnitudes
    mask = rng.random(size=(rows, columns)) < missing_rate
    x[mask] = np.nan
    return x


def signal(x):
    """A nonlinear target that depends on several columns, NaN counted as 0."""
    z = np.nan_to_num(x, nan=0.0)
    return (
        1.5 * z[:, 0]
        - 0.8 * np.log1p(z[:, 1])
        + 0.6 * (z[:, 2] > 1)
        + 0.002 * (z[:, 3] - 5000.0)
        + 0.5 * z[:, 4] * z[:, 5]
        - 0.7 * np.isnan(x[:, 6])
    )


def format_value(value):
    """Shortest repr that round-trips the float64 (and so its float32 rounding)."""
    return "" if np.isnan(value) else repr(float(value))


def write_rows_csv(path, x):
    with open(path, "w", encoding="utf-8") as out:
        for row in x:
            out.write(",".join(format_value(v) for v in row))
            out.write("\n")


def write_expected_csv(path, predictions):
    predictions = np.asarray(predictions, dtype=np.float32)
    if predictions.ndim == 1:
        predictions = predictions.reshape(-1, 1)
    with open(path, "w", encoding="utf-8") as out:
        for row in predictions:
            # float32 -> float64 is exact, so repr keeps every bit XGBoost produced.
            out.write(",".join(repr(float(v)) for v in row))
            out.write("\n")


def train(x, y, params, rounds):
    dtrain = xgb.DMatrix(x, label=y, missing=np.nan)
    merged = {"nthread": 1, "seed": SEED, "tree_method": "hist", "max_bin": 64}
    merged.update(params)
    return xgb.train(merged, dtrain, num_boost_round=rounds)


def fixture_cases(rng):
    columns = 8
    train_rows = 1000
    score_rows = 200

    x = make_features(rng, train_rows + score_rows, columns, missing_rate=0.15)
    s = signal(x)
    noise = rng.normal(scale=0.3, size=s.shape)
    x_train, x_score = x[:train_rows], x[train_rows:]

    # Regression on a large-valued target with a base_score away from 0.5 and the mean.
    y_reg = 100.0 + 10.0 * (s + noise)
    yield "regression", x_train, y_reg[:train_rows], x_score, {
        "objective": "reg:squarederror",
        "max_depth": 4,
        "eta": 0.3,
        "base_score": 80.0,
    }, 50

    # Binary with a base_score that is not 0.5, so the logit of base_score matters.
    y_bin = (s + noise > 0.4).astype(np.float64)
    yield "binary", x_train, y_bin[:train_rows], x_score, {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.2,
        "base_score": 0.3,
    }, 50

    # Three classes, softprob, one tree per class per round.
    y_multi = np.digitize(s + noise, [-0.5, 0.8]).astype(np.float64)
    yield "multiclass", x_train, y_multi[:train_rows], x_score, {
        "objective": "multi:softprob",
        "num_class": 3,
        "max_depth": 4,
        "eta": 0.3,
    }, 30


def write_fixtures(out_dir):
    rng = np.random.RandomState(SEED)
    for name, x_train, y_train, x_score, params, rounds in fixture_cases(rng):
        booster = train(x_train, y_train, params, rounds)
        case_dir = os.path.join(out_dir, name)
        os.makedirs(case_dir, exist_ok=True)
        booster.save_model(os.path.join(case_dir, "model.json"))
        write_rows_csv(os.path.join(case_dir, "rows.csv"), x_score)
        dscore = xgb.DMatrix(x_score, missing=np.nan)
        write_expected_csv(os.path.join(case_dir, "expected.csv"), booster.predict(dscore))
        print(f"{name}: {rounds} rounds, {x_score.shape[0]} rows -> {case_dir}")
    with open(os.path.join(out_dir, "VERSION"), "w", encoding="utf-8") as out:
        out.write(f"xgboost {xgb.__version__}, numpy {np.__version__}, seed {SEED}\n")


def write_bench(out_dir, rows, trees, depth, columns=20, train_rows=20000, repeats=3):
    rng = np.random.RandomState(SEED + 1)
    os.makedirs(out_dir, exist_ok=True)
    x_train = make_features(rng, train_rows, columns, missing_rate=0.05)
    y_train = (signal(x_train) + rng.normal(scale=0.5, size=train_rows) > 0.4).astype(np.float64)
    booster = train(
        x_train,
        y_train,
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 2},
        trees,
    )
    booster.set_param({"nthread": 1})
    booster.save_model(os.path.join(out_dir, "model.json"))

    x = make_features(rng, rows, columns, missing_rate=0.05)
    x.astype("<f8").tofile(os.path.join(out_dir, "rows.f64"))

    # Time only the prediction, not building the DMatrix, and keep the best of a few
    # runs: the same rule the TypeScript side follows. Each run gets a fresh DMatrix:
    # XGBoost caches predictions per DMatrix, so a second predict on the same one is free.
    best = float("inf")
    predictions = None
    for _ in range(repeats):
        dmatrix = xgb.DMatrix(x, missing=np.nan, nthread=1)
        started = time.perf_counter()
        predictions = booster.predict(dmatrix)
        best = min(best, time.perf_counter() - started)
    np.asarray(predictions, dtype="<f4").tofile(os.path.join(out_dir, "expected.f32"))
    with open(os.path.join(out_dir, "timing.json"), "w", encoding="utf-8") as out:
        json.dump(
            {
                "xgboostVersion": xgb.__version__,
                "rows": rows,
                "columns": columns,
                "trees": trees,
                "depth": depth,
                "nthread": 1,
                "repeats": repeats,
                "bestSeconds": best,
            },
            out,
        )
    print(f"bench: {trees} trees depth {depth}, {rows} rows, best {best:.3f}s -> {out_dir}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fixtures = sub.add_parser("fixtures", help="write the committed parity fixtures")
    fixtures.add_argument("--out", default=os.path.join("events", "fixtures", "xgboost"))
    bench = sub.add_parser("bench", help="write a benchmark model and rows, time XGBoost on them")
    bench.add_argument("--out", required=True)
    bench.add_argument("--rows", type=int, default=200_000)
    bench.add_argument("--trees", type=int, default=200)
    bench.add_argument("--depth", type=int, default=6)
    bench.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.command == "fixtures":
        write_fixtures(args.out)
    else:
        write_bench(args.out, args.rows, args.trees, args.depth, repeats=args.repeats)


if __name__ == "__main__":
    main()
