#!/usr/bin/env bash
# Runs on the GPU machine (no Rust toolchain, no network) in one go, under 8 minutes:
# the prebuilt GPU tests and benchmarks from gpu-bin/ (see scripts/build-gpu-bin.sh) and
# the PyTorch eager twin of the recommender, then prints a short table last.
# Full logs go to $OUT (or ./gpu-out when OUT is unset).
set -u
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"; mkdir -p "$out"
py=python3; [ -x /opt/torch/.venv/bin/python3 ] && py=/opt/torch/.venv/bin/python3

# cudarc loads libnvrtc and libcublas by soname: find them and put their folders first.
libdirs=""
for lib in libnvrtc.so libcublas.so; do
  f=$( (ldconfig -p | awk -v l="$lib" '$1 ~ l {print $NF}'; \
        find /opt /usr/local /usr/lib -name "$lib*" 2>/dev/null) | head -n 1)
  [ -n "$f" ] && libdirs="$libdirs:$(dirname "$f")"
done
export LD_LIBRARY_PATH="${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
echo "card: $card"

results=()
for t in gpu-bin/test-* gpu-bin/lib-boson; do
  name=${t#gpu-bin/test-}
  filter=""  # the recommender binary: only its GPU test (the rest are CPU tests)
  [ "$name" = recommender ] && filter=the_example_trains_on_the_gpu_as_on_the_cpu
  # The library's unit tests: the CUDA layer's (the launchers against CPU loops).
  [ "$t" = gpu-bin/lib-boson ] && name=lib-cuda && filter=cuda::
  timeout 240 "$t" --test-threads=1 $filter >"$out/$name.log" 2>&1; rc=$?
  summary=$(grep -E '^test result:' "$out/$name.log" | tail -n 1)
  skips=$(grep -c 'skipped' "$out/$name.log")
  results+=("| $name | rc=$rc | ${summary:-no summary} | skips printed: $skips |")
  grep -E '^test .* (ok|FAILED)$|panicked|skipped' "$out/$name.log" | head -n 40
done
# Kernel bandwidth (an ignored unit test beside the crate-private launchers); the table only.
timeout 120 gpu-bin/lib-boson --ignored --exact cuda::ops::bandwidth::kernel_bandwidth --nocapture 2>&1 |
  grep -E '^(CUDA kernels|[|]|skipped|.*panicked|test .*FAILED)' |
  awk '/^CUDA kernels/ { print; print ""; next } { print }' >"$out/cuda_kernels.md"
timeout 180 gpu-bin/bench-gpu_train >"$out/gpu_train.jsonl" 2>&1
timeout 150 "$py" scripts/torch_mf_gpu.py >"$out/torch.jsonl" 2>&1
# The worked example end to end on the GPU (built-in data), and on the CPU for the same
# epochs: their test RMSE should agree.
if [ -x gpu-bin/example-recommender ]; then
  timeout 150 gpu-bin/example-recommender --device cuda --model mfblock --no-guard --epochs 5 --model-dir "$out/model-gpu" >"$out/recommender-gpu.log" 2>&1
  timeout 150 gpu-bin/example-recommender --device cpu --model mfblock --no-guard --epochs 5 --model-dir "$out/model-cpu" >"$out/recommender-cpu.log" 2>&1
  rm -rf "$out/model-gpu" "$out/model-cpu"
fi

echo
echo "## GPU check on $card, $(date -u +%Y-%m-%d)"
echo
echo "| test binary | exit | result | skips |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
cat "$out/cuda_kernels.md"
echo
echo "Recommender training (MFBlock, batch 1024, SGD momentum), samples/s:"
cat "$out/gpu_train.jsonl" "$out/torch.jsonl"
echo
echo "Recommender example (5 epochs, built-in data), final JSON lines (cuda, then cpu):"
tail -n 1 "$out/recommender-gpu.log" 2>/dev/null
tail -n 1 "$out/recommender-cpu.log" 2>/dev/null
