#!/usr/bin/env python3
"""Golden values for boson's MultiHeadAttention and TransformerEncoderLayer from PyTorch
(tests/attention.rs).

Cases: torch.nn.MultiheadAttention (batch_first) as self-attention with a causal mask and
key padding, and as cross-attention (3 queries, 5 keys) with key padding; and
torch.nn.TransformerEncoderLayer (norm_first=True, activation="gelu", batch_first,
dropout 0) with both masks. Weights and inputs are seeded and rounded to two decimals.
The fixture holds the parameters under boson's names (PyTorch's in_proj_weight split into
query/key/value), the output, and the gradients of sum(output * r) with respect to the
inputs and every parameter. Every query sees at least one key.

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy
    .venv-torch/bin/python scripts/torch_attention_golden.py  # writes tests/fixtures/torch/attention.json
"""

import json
import os

import numpy as np
import torch

torch.use_deterministic_algorithms(True)
E, HEADS, HIDDEN, N = 8, 2, 16, 2


def values(t):
    return [float(np.float32(v)) for v in t.detach().double().reshape(-1).tolist()]


def rounded(rng, shape):
    return torch.tensor(np.round(rng.uniform(-1.0, 1.0, size=shape), 2), dtype=torch.float32)


def boson_params(named):
    """PyTorch parameter name -> [(boson name, tensor slice fn)]."""
    out = []
    for name, p in named:
        prefix, leaf = (name.rsplit(".", 1) + [""])[:2] if "." in name else ("", name)
        if leaf in ("in_proj_weight", "in_proj_bias"):
            kind = "weight" if leaf.endswith("weight") else "bias"
            base = prefix.replace("self_attn", "attention")
            base = base + "." if base else ""
            for k, part in enumerate(["query", "key", "value"]):
                out.append((f"{base}{part}.{kind}", p, slice(k * E, (k + 1) * E)))
            continue
        mapped = (name.replace("self_attn.", "attention.")
                  .replace("out_proj", "output")
                  .replace("linear1", "ffn1")
                  .replace("linear2", "ffn2"))
        if mapped.startswith("norm"):
            mapped = mapped.replace(".weight", ".gamma").replace(".bias", ".beta")
        out.append((mapped, p, slice(None)))
    return out


def record(net, inputs, out, r, extra):
    (out * r).sum().backward()
    params = {}
    grads = {}
    for name, p, sl in boson_params(list(net.named_parameters())):
        params[name] = {"shape": list(p[sl].shape), "values": values(p[sl])}
        grads[name] = values(p.grad[sl])
    case = {
        "inputs": {k: {"shape": list(v.shape), "values": values(v)} for k, v in inputs.items()},
        "input_grads": {k: values(v.grad) for k, v in inputs.items() if v.grad is not None},
        "params": params,
        "output_shape": list(out.shape),
        "output": values(out),
        "r": values(r),
        "param_grads": grads,
    }
    case.update(extra)
    return case


def set_weights(net, rng):
    with torch.no_grad():
        for _, p in net.named_parameters():
            p.copy_(rounded(rng, tuple(p.shape)))


def main():
    cases = []
    rng = np.random.default_rng(42)

    # Self-attention, causal, with the last key of sample 1 padded.
    mha = torch.nn.MultiheadAttention(E, HEADS, batch_first=True)
    set_weights(mha, rng)
    T = 5
    x = rounded(rng, (N, T, E)).requires_grad_(True)
    keep = torch.ones(N, T)
    keep[1, T - 1] = 0
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    out, _ = mha(x, x, x, attn_mask=causal, key_padding_mask=keep == 0, need_weights=False)
    r = rounded(rng, tuple(out.shape))
    cases.append(record(mha, {"x": x}, out, r, {
        "layer": "attention", "kind": "self", "causal": True, "key_padding": values(keep)}))

    # Cross-attention: 3 queries, 5 keys, two keys of sample 0 padded.
    mha = torch.nn.MultiheadAttention(E, HEADS, batch_first=True)
    set_weights(mha, rng)
    q = rounded(rng, (N, 3, E)).requires_grad_(True)
    kv = rounded(rng, (N, 5, E)).requires_grad_(True)
    keep = torch.ones(N, 5)
    keep[0, 3:] = 0
    out, _ = mha(q, kv, kv, key_padding_mask=keep == 0, need_weights=False)
    r = rounded(rng, tuple(out.shape))
    cases.append(record(mha, {"query": q, "kv": kv}, out, r, {
        "layer": "attention", "kind": "cross", "causal": False, "key_padding": values(keep)}))

    # Pre-norm encoder layer with GELU, causal and padded.
    layer = torch.nn.TransformerEncoderLayer(E, HEADS, HIDDEN, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True)
    set_weights(layer, rng)
    x = rounded(rng, (N, T, E)).requires_grad_(True)
    keep = torch.ones(N, T)
    keep[0, T - 1] = 0
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    out = layer(x, src_mask=causal, src_key_padding_mask=keep == 0, is_causal=False)
    r = rounded(rng, tuple(out.shape))
    cases.append(record(layer, {"x": x}, out, r, {
        "layer": "encoder", "kind": "self", "causal": True, "key_padding": values(keep)}))

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out_dir = os.path.join(root, "tests", "fixtures", "torch")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "attention.json"), "w") as f:
        json.dump({"torch": torch.__version__, "units": E, "heads": HEADS, "hidden": HIDDEN,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to tests/fixtures/torch/attention.json (torch {torch.__version__})")


if __name__ == "__main__":
    main()
