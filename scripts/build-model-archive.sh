#!/bin/sh
# Builds the model.tar.gz SageMaker's built-in XGBoost container loads from an XGBoost
# JSON model: one file named xgboost-model at the top of the archive, nothing else
# (docs/infra.md, Scoring model archive). Byte-for-byte reproducible (fixed names, owner,
# mode and time; gzip without a name or time stamp), so the committed archive only changes
# when the model does and the stack's upload asset keeps its hash.
#
# Usage: scripts/build-model-archive.sh MODEL_JSON ARCHIVE
#   e.g. scripts/build-model-archive.sh pipelines/models/credit-risk/model.json pipelines/models/credit-risk/model.tar.gz
set -eu
model=$1
archive=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$model" "$work/xgboost-model"
chmod 644 "$work/xgboost-model"
tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" -cf - xgboost-model | gzip -9 -n > "$archive"
echo "$archive: xgboost-model <- $model"
