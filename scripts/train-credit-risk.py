#!/usr/bin/python3
"""Trains the credit-risk sample model with XGBoost (Debian's python3-xgboost).

Usage: /usr/bin/python3 scripts/train-credit-risk.py TRAIN_CSV MODEL_JSON
TRAIN_CSV: no header, label first, then the transformed features (empty = missing).
Writes XGBoost's JSON model (binary:logistic). Deterministic: fixed seed, one thread.
"""
import sys

try:
    import numpy as np
    import xgboost as xgb
except ImportError as error:  # depends on the machine
    sys.stderr.write(f"python xgboost is not available ({error}); install it with: apt-get install -y python3-xgboost\n")
    sys.exit(3)

train_csv, model_json = sys.argv[1], sys.argv[2]
rows = [line.rstrip("\n").split(",") for line in open(train_csv) if line.strip()]
data = np.array([[float(v) if v != "" else np.nan for v in row] for row in rows], dtype=np.float64)
label, features = data[:, 0], data[:, 1:]
booster = xgb.train(
    {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "subsample": 0.9, "seed": 7, "nthread": 1, "base_score": 0.25},
    xgb.DMatrix(features, label=label, missing=np.nan),
    num_boost_round=80,
)
booster.save_model(model_json)
print(f"trained on {len(label)} rows, {features.shape[1]} features -> {model_json}")
