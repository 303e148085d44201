#!/usr/bin/env python3
"""Golden values for boson's LSTM and GRU from PyTorch (tests/rnn.rs).

For each case (cell, layers, bidirectional, layout) it builds torch.nn.LSTM / GRU with
seeded weights rounded to two decimals, runs a fixed input from given initial states,
and writes the output, the final states and the gradients of sum(output * r) (r fixed)
with respect to the input and every weight, under Gluon's parameter names
(l0_i2h_weight = weight_ih_l0, r0_h2h_bias = bias_hh_l0_reverse, ...).

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy
    .venv-torch/bin/python scripts/torch_rnn_golden.py   # writes tests/fixtures/torch/rnn.json

A rerun writes an identical file. Numbers are the shortest decimals that round-trip the
float32 values.
"""

import json
import os

import numpy as np
import torch

torch.use_deterministic_algorithms(True)


def values(t):
    return [float(np.float32(v)) for v in t.detach().double().reshape(-1).tolist()]


def rounded(rng, shape):
    return torch.tensor(np.round(rng.uniform(-1.0, 1.0, size=shape), 2), dtype=torch.float32)


def case(cell, layers, bidirectional, batch_first, seed):
    T, N, C, H = 4, 3, 5, 4
    rng = np.random.default_rng(seed)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    net = cls(C, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    D = 2 if bidirectional else 1
    params = {}
    for name, p in net.named_parameters():
        with torch.no_grad():
            p.copy_(rounded(rng, tuple(p.shape)))
        # weight_ih_l0_reverse -> r0_i2h_weight
        kind, which, layer = name.split("_")[:3]
        reverse = name.endswith("_reverse")
        gluon = f"{'r' if reverse else 'l'}{layer[1:]}_{'i2h' if which == 'ih' else 'h2h'}_{kind}"
        params[gluon] = p
    shape = (N, T, C) if batch_first else (T, N, C)
    x = rounded(rng, shape).requires_grad_(True)
    h0 = rounded(rng, (layers * D, N, H))
    c0 = rounded(rng, (layers * D, N, H))
    if cell == "lstm":
        out, (hn, cn) = net(x, (h0, c0))
        states_in, states_out = [h0, c0], [hn, cn]
    else:
        out, hn = net(x, h0)
        states_in, states_out = [h0], [hn]
    r = rounded(rng, tuple(out.shape))
    (out * r).sum().backward()
    return {
        "cell": cell,
        "layers": layers,
        "bidirectional": bidirectional,
        "layout": "NTC" if batch_first else "TNC",
        "hidden": H,
        "input_shape": list(shape),
        "input": values(x),
        "states": [values(s) for s in states_in],
        "params": {k: {"shape": list(p.shape), "values": values(p)} for k, p in params.items()},
        "output_shape": list(out.shape),
        "output": values(out),
        "final_states": [values(s) for s in states_out],
        "r": values(r),
        "input_grad": values(x.grad),
        "param_grads": {k: values(p.grad) for k, p in params.items()},
    }


def main():
    cases = []
    seed = 0
    for cell in ["lstm", "gru"]:
        for layers, bidirectional, batch_first in [(1, False, False), (2, True, False), (2, False, True)]:
            seed += 1
            cases.append(case(cell, layers, bidirectional, batch_first, seed))
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = os.path.join(root, "tests", "fixtures", "torch")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rnn.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to tests/fixtures/torch/rnn.json (torch {torch.__version__})")


if __name__ == "__main__":
    main()
