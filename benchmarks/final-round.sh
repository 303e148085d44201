#!/usr/bin/env bash
# One alternating round per file: boson (row-sparse), boson --dense-grads, PyTorch index
# batching, MXNet Gluon loop, burn flex and candle (small only; their large runs take
# ~190 s and ~290 s).
set -u
D=/work/scratch-anchors/rust-peers/data
PY=/work/scratch-py/python
B=/work/main/target/release/examples/recommender
out=${OUT_JSONL:-/work/scratch-final/runs.jsonl}
: > $out
run() { # tag data cmd...
  local tag=$1 data=$2; shift 2
  local load=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$(date +%s.%N)
  local line=$(cd $PY && timeout 400 "$@" 2>/dev/null | grep '^{' | tail -n 1)
  local t1=$(date +%s.%N)
  echo "{\"tag\":\"$tag\",\"data\":\"$data\",\"load1\":$load,\"wall\":$(echo "$t1 - $t0" | bc),\"result\":${line:-null}}" | tee -a $out
}
for f in small:mf_u20000_i5000_r500000_s42.tsv large:ratings_py_u150000_i38000_r1000000_s0.tsv; do
  tag=${f%%:*}; file=$D/${f#*:}
  run boson $tag $B --anchor-tsv $file --epochs 3 --model mfblock --no-ranking --device cpu --model-dir /tmp/fb
  run boson-dense $tag $B --anchor-tsv $file --epochs 3 --model mfblock --no-ranking --device cpu --dense-grads --model-dir /tmp/fb
  run torch-index $tag .venv-torch/bin/python torch_mf.py --data $file --epochs 3 --threads 2 --loader index
  run mxnet $tag .venv-mxnet/bin/python mxnet_mf.py --data $file --epochs 3
  [ $tag = small ] && RAYON_NUM_THREADS=1 run burn-flex $tag /work/scratch-anchors/target/burn/release/burn-mf --data $file --epochs 3 --backend flex
  [ $tag = small ] && RAYON_NUM_THREADS=1 run candle $tag /work/scratch-anchors/target/candle/release/candle-mf --data $file --epochs 3
  run boson $tag $B --anchor-tsv $file --epochs 3 --model mfblock --no-ranking --device cpu --model-dir /tmp/fb
done
