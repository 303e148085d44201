#!/usr/bin/env bash
# LeNet on Fashion-MNIST, 10 epochs, the same IDX files, one alternating run:
# boson, PyTorch, MXNet 1.9.1 Gluon, boson again. Each prints one JSON line; this script
# wraps it with the load average before the run and the wall time.
# Usage: benchmarks/vision-side-by-side.sh [DATA_DIR]  (default data/fashion-mnist)
# Needs: a release build of the example (cargo build --release --example fashion_mnist),
# .venv-torch (torch, numpy) and .venv-mxnet (mxnet==1.9.1, numpy==1.23.5) at VENVS
# (default /work), and the anchors in ../shared/anchors/vision/.
set -u
DATA=${1:-data/fashion-mnist}
VENVS=${VENVS:-/work}
ANCHORS=${ANCHORS:-../shared/anchors/vision}
B=target/release/examples/fashion_mnist
out=${OUT_JSONL:-/tmp/vision-side-by-side.jsonl}
: > "$out"
source "$(dirname "$0")/run-json.sh"
# --val-size 0: train on all 60,000 images, as the anchors do.
run boson $B --data "$DATA" --val-size 0 --model-dir /tmp/fm-side-by-side
run torch "$VENVS/.venv-torch/bin/python" "$ANCHORS/torch_lenet.py" --data "$DATA" --threads 2
run mxnet "$VENVS/.venv-mxnet/bin/python" "$ANCHORS/mxnet_lenet.py" --data "$DATA"
run boson $B --data "$DATA" --val-size 0 --model-dir /tmp/fm-side-by-side
