"""The layers of benches/vision.rs in PyTorch (CPU), for the side-by-side in BENCHMARKS.md.

Usage: python torch_conv_bench.py [--threads 2]. Prints one JSON line per layer with the
median of 20 timed runs (after 3 warm-up runs) in milliseconds, forward and forward +
backward (to the input, weight and bias), as the criterion benches measure.
"""
import argparse, json, time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

cases = [
    ("lenet conv1 256x1x28x28 6@5x5", (256, 1, 28, 28), (6, 1, 5, 5), 0),
    ("lenet conv2 256x6x12x12 16@3x3", (256, 6, 12, 12), (16, 6, 3, 3), 0),
    ("64x64x32x32 64@3x3 pad 1", (64, 64, 32, 32), (64, 64, 3, 3), 1),
]


def median_ms(f, runs=20):
    for _ in range(3):
        f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3


for name, xs, ws, pad in cases:
    x = (torch.rand(xs) - 0.5).requires_grad_()
    w = (torch.rand(ws) - 0.5).requires_grad_()
    b = (torch.rand(ws[0]) - 0.5).requires_grad_()

    def forward():
        with torch.no_grad():
            F.conv2d(x, w, b, padding=pad)

    def both():
        F.conv2d(x, w, b, padding=pad).sum().backward()

    print(json.dumps({"framework": "torch", "version": torch.__version__, "threads": args.threads,
                      "layer": name, "forward_ms": median_ms(forward), "forward_backward_ms": median_ms(both)}))

x = (torch.rand(256, 6, 24, 24) - 0.5).requires_grad_()
print(json.dumps({"framework": "torch", "layer": "max 2x2 256x6x24x24",
                  "forward_backward_ms": median_ms(lambda: F.max_pool2d(x, 2).sum().backward())}))
