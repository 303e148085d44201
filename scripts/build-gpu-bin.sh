#!/usr/bin/env bash
# Builds the GPU test and benchmark binaries in release mode on this (GPU-less) machine
# and copies them into gpu-bin/ (git-ignored), which scripts/gpu-check.sh runs on the GPU
# machine. The library's own unit tests, which hold the CUDA launchers' tests and the
# kernel bandwidth report, become gpu-bin/lib-boson.
# Usage: scripts/build-gpu-bin.sh, then device run with carry ["gpu-bin"].
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu-bin && mkdir -p gpu-bin
pick() { # $1: cargo args; copies each built executable as gpu-bin/<kind>-<target name>
  cargo $1 --message-format=json 2>/dev/null |
    python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        kind = m["target"]["kind"][0]
        shutil.copy(m["executable"], "gpu-bin/%s-%s" % (kind, m["target"]["name"]))
'
}
pick "test --release --no-run --lib --test gpu_tensor --test gpu_atomic_scatter --test cuda_kernels_compile --test recommender --test rnn --test attention --test custom_op"
pick "bench --no-run --bench gpu_train"
pick "build --release --example recommender"
strip gpu-bin/* 2>/dev/null || true
ls -la gpu-bin
