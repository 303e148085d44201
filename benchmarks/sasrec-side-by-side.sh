#!/usr/bin/env bash
# SASRec (the recommender's --model sasrec) against the PyTorch reference written from
# the papers (scripts/sasrec_torch.py: same split, windows, masking, model and loss), on
# the same file, one alternating run: boson, PyTorch, boson again, EPOCHS epochs each
# (fixed: early stopping off). Each prints one JSON line; the rate to compare is training
# positions per second (boson's train_samples_per_sec: a sample is one position's
# next-item prediction), validation excluded on both sides.
# Usage: benchmarks/sasrec-side-by-side.sh [DATA]  (default data/ml1m-shaped.inter,
# written by scripts/ml1m_shaped.py when missing: MovieLens-1M's shape, values for
# timing only). Needs a release build of the example and .venv-torch at VENVS (/work).
set -u
DATA=${1:-data/ml1m-shaped.inter}
EPOCHS=${EPOCHS:-3}
VENVS=${VENVS:-/work}
B=target/release/examples/recommender
out=${OUT_JSONL:-/tmp/sasrec-side-by-side.jsonl}
[ -f "$DATA" ] || python3 scripts/ml1m_shaped.py "$DATA"
: > "$out"
TIMEOUT=${TIMEOUT:-3000}
source "$(dirname "$0")/run-json.sh"
boson=($B --data "$DATA" --format movielens --min-user-ratings 0 --min-item-ratings 0 --task ranking
  --model sasrec --epochs "$EPOCHS" --early-stopping-patience "$EPOCHS" --no-ranking --progress never
  --device cpu --model-dir /tmp/sasrec-side-by-side)
run boson "${boson[@]}"
# The PyTorch script's defaults are the first ones (2 blocks, batch 128, lr 0.001): the
# example's current defaults are passed.
run torch "$VENVS/.venv-torch/bin/python" scripts/sasrec_torch.py "$DATA" --threads 2 \
  --epochs "$EPOCHS" --patience "$EPOCHS" --blocks 3 --batch-size 32 --lr 0.002 --dropout 0.2
run boson "${boson[@]}"
