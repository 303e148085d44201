#!/usr/bin/env bash
# Installs NVRTC 13.0 (+ the CUDA runtime headers) from PyPI into .cache/cuda13 so that
# tests/cuda_kernels_compile.rs can compile every kernel on a machine without a GPU.
# Prints the two export lines to apply:   eval "$(scripts/ci-nvrtc.sh)"
# Pinned to 13.0.x: it emits PTX 9.0, which the GPU machines' driver (580) accepts.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/cuda13"
if [ ! -e "$dest/nvidia/cu13/lib/libnvrtc.so.13" ]; then
    # Both wheels in one command: a second --target install into the folder is skipped.
    python3 -m pip install -q --target "$dest" nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 >&2
fi
echo "export LD_LIBRARY_PATH=$dest/nvidia/cu13/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export BOSON_CUDA_INCLUDE=$dest/nvidia/cu13/include"
