#!/usr/bin/env bash
# Runs the mutation fuzz targets of tests/fuzz.rs (rating readers, model folders,
# checkpoints, HTTP requests) with N inputs each (default 1,000,000) and prints one line
# per target: inputs run and crashes. Crashing inputs are saved in target/fuzz-crashes/.
# Usage: scripts/fuzz.sh [N] [TARGET...]   (targets: readers requests model_folders checkpoints)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
shift || true
targets=${*:-readers requests model_folders checkpoints}
cargo build --release --tests -q
for t in $targets; do
  case $t in
    readers) name=fuzz_rating_readers ;;
    *) name=fuzz_$t ;;
  esac
  BOSON_FUZZ_INPUTS=$n cargo test -q --release --test fuzz -- --ignored --exact "$name" 2>&1 |
    grep -E "^fuzz |panicked|FAILED" || true
done
