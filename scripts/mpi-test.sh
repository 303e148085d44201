#!/usr/bin/env bash
# The 2-rank MPI tests (tests/mpi.rs) under mpirun, with a timeout: the data-parallel
# checks must pass on both ranks, and a rank that fails must end the whole job with an
# error naming it, never a hang. Needs Open MPI (apt: libopenmpi-dev openmpi-bin
# libclang-dev; .ci/run installs them).
# BOSON_MPI_FEATURES=nccl also runs the checks over NCCL (on a machine with a GPU per rank).
set -euo pipefail
cd "$(dirname "$0")/.."
features=${BOSON_MPI_FEATURES:-mpi}
exe=$(cargo test --features "$features" --test mpi --no-run --message-format=json -q |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "mpi":
        print(m["executable"])')
run() { timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 "$exe"; }
run
echo "mpi-test: a failing rank must end the job:"
set +e
out=$(BOSON_MPI_FAIL_RANK=1 run 2>&1)
rc=$?
set -e
echo "$out" | grep -E "rank 1|exit" | head -5
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || ! grep -q "rank 1: failing on purpose" <<<"$out"; then
  echo "mpi-test: FAILED: rc $rc (0: the failure went unnoticed; 124: a hang)" >&2
  exit 1
fi
echo "mpi-test: ok (the job ended with rc $rc, naming rank 1)"

# The recommender: 2 ranks of batch 32 against one process of batch 64 (no dropout: its
# masks differ per sample position), on small built-in data.
cargo build --features mpi --example recommender -q
bin="${CARGO_TARGET_DIR:-target}/debug/examples/recommender"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args="--synthetic-users 1500 --synthetic-items 600 --synthetic-ratings 20000 --epochs 3 --dropout 0 --no-ranking --no-guard --progress never"
one=$(timeout 300 "$bin" $args --batch-size 64 --model-dir "$work/one" | tail -1)
two=$(timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" $args --batch-size 32 --distributed --model-dir "$work/two" | tail -1)
sharded=$(timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" $args --batch-size 32 --distributed --shard-embeddings --model-dir "$work/sharded" | tail -1)
python3 - "$one" "$two" "$sharded" <<'PY'
import json, sys
one, two, sharded = (json.loads(a)["test_rmse"] for a in sys.argv[1:4])
print(f"mpi-test: recommender test RMSE, 1 process of batch 64: {one:.8f}; 2 ranks of 32: "
      f"{two:.8f}; 2 ranks with sharded tables: {sharded:.8f}")
if abs(one - two) > 1e-5 * one or abs(one - sharded) > 1e-5 * one:
    sys.exit("mpi-test: FAILED: a 2-rank run differs")
PY
