#!/usr/bin/env python3
"""Golden values for boson's convolution and pooling layers from PyTorch
(tests/vision_torch.rs).

Each case runs torch.nn.functional's conv2d, conv_transpose2d, max_pool2d or avg_pool2d
on a seeded input (and weights), rounded to two decimals, and records the output and the
gradients of sum(output * r) (r fixed) with respect to the input, weight and bias.
Weights use PyTorch's layouts, which are Gluon's and boson's: conv [out, in/groups, kh,
kw], transposed conv [in, out/groups, kh, kw].

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy
    .venv-torch/bin/python scripts/torch_vision_golden.py  # writes tests/fixtures/torch/vision.json
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.use_deterministic_algorithms(True)


def values(t):
    return [float(np.float32(v)) for v in t.detach().double().reshape(-1).tolist()]


def rounded(rng, shape):
    t = torch.tensor(np.round(rng.uniform(-1.0, 1.0, size=shape), 2), dtype=torch.float32)
    return t.requires_grad_(True)


def record(op, args, tensors, out, rng):
    r = rounded(rng, tuple(out.shape)).detach()
    (out * r).sum().backward()
    return {
        "op": op,
        "args": args,
        "tensors": {k: {"shape": list(t.shape), "values": values(t)} for k, t in tensors.items()},
        "grads": {k: values(t.grad) for k, t in tensors.items()},
        "output_shape": list(out.shape),
        "output": values(out),
        "r": values(r),
    }


def main():
    rng = np.random.default_rng(7)
    cases = []

    x = rounded(rng, (2, 4, 7, 6))
    w = rounded(rng, (6, 2, 3, 2))
    b = rounded(rng, (6,))
    args = {"stride": [2, 1], "padding": [1, 1], "dilation": [1, 2], "groups": 2}
    out = F.conv2d(x, w, b, stride=args["stride"], padding=args["padding"],
                   dilation=args["dilation"], groups=args["groups"])
    cases.append(record("conv2d", args, {"x": x, "weight": w, "bias": b}, out, rng))

    x = rounded(rng, (2, 3, 5, 5))
    w = rounded(rng, (4, 3, 3, 3))
    args = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}
    out = F.conv2d(x, w, None)
    cases.append(record("conv2d", args, {"x": x, "weight": w}, out, rng))

    x = rounded(rng, (2, 4, 4, 3))
    w = rounded(rng, (4, 3, 3, 3))
    b = rounded(rng, (6,))
    args = {"stride": [2, 2], "padding": [1, 1], "output_padding": [1, 0], "dilation": [1, 1],
            "groups": 2}
    out = F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=(1, 0), groups=2)
    cases.append(record("conv_transpose2d", args, {"x": x, "weight": w, "bias": b}, out, rng))

    x = rounded(rng, (2, 3, 7, 6))
    args = {"pool": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True}
    out = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    cases.append(record("max_pool2d", args, {"x": x}, out, rng))

    for include in [True, False]:
        x = rounded(rng, (2, 3, 5, 6))
        args = {"pool": [2, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": False,
                "count_include_pad": include}
        out = F.avg_pool2d(x, (2, 3), 2, 1, count_include_pad=include)
        cases.append(record("avg_pool2d", args, {"x": x}, out, rng))

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out_dir = os.path.join(root, "tests", "fixtures", "torch")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vision.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to tests/fixtures/torch/vision.json (torch {torch.__version__})")


if __name__ == "__main__":
    main()
