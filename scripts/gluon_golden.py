#!/usr/bin/env python3
"""Golden values from Apache MXNet 1.9.1 Gluon for tests/gluon_fidelity.rs.

Runs fixed, small float32 inputs through real MXNet (mx.nd, mx.autograd, mx.gluon) and
writes what MXNet computes to JSON fixtures: losses (value, shape and gradient),
optimizer steps through gluon.Trainer, metrics over several updates, layers in train
and predict mode, and DataLoader batch sequences. Where MXNet raises for a case, the
fixture records that it raised instead of a value.

Run it through scripts/gluon-golden.sh, which makes the virtual environment:

    scripts/gluon-golden.sh            # writes tests/fixtures/gluon/*.json

Every input is written literally below or drawn from numpy with a fixed seed and
rounded to two decimals, so a rerun writes identical files. Numbers are written as the
shortest decimal that round-trips the float32 value.
"""

import argparse
import json
import math
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon, nd  # noqa: E402

F32 = np.float32


# ---------------------------------------------------------------------------- helpers


def num(v):
    """A float32 value as the shortest decimal that round-trips it (None for NaN)."""
    f = F32(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return float(repr(f))


def tensor(a):
    """{"shape": [...], "data": [...]} of an NDArray or numpy array (row-major)."""
    if isinstance(a, nd.NDArray):
        a = a.asnumpy()
    a = np.asarray(a, dtype=F32)
    return {"shape": list(a.shape), "data": [num(v) for v in a.ravel()]}


def arr(a):
    """A float32 numpy array, rounded to two decimals (exact in the fixture)."""
    return np.round(np.asarray(a, dtype=np.float64), 2).astype(F32)


def rng(seed):
    return np.random.RandomState(seed)


def raised(e):
    """The exception's type and its most telling line (MXNet's own check, not the
    traceback header)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    telling = [line for line in lines if "Check failed" in line or "Error" in line
               and not line.startswith("Traceback")]
    line = (telling or lines or [""])[-1]
    name = type(e).__name__
    if not line.startswith(name):
        line = "%s: %s" % (name, line)
    return {"raises": line[:300]}


def meta():
    return {
        "mxnet_version": mx.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "generator": "scripts/gluon_golden.py",
    }


# ----------------------------------------------------------------------------- losses


def run_loss(loss, inputs, grad_names, sample_weight=None, extra=None):
    """Forward under autograd.record, backward of loss.sum(); the value, its shape and
    the gradient of every input in grad_names."""
    try:
        arrays = {k: nd.array(v, dtype="float32") for k, v in inputs.items()}
        for k in grad_names:
            arrays[k].attach_grad()
        # Block.__call__ takes positional inputs only: pred, label, sample_weight, then
        # any extra input (pos_weight).
        args = [arrays[k] for k in inputs]
        if sample_weight is not None:
            args.append(nd.array(sample_weight, dtype="float32"))
        elif extra:
            args.append(None)
        args.extend(extra or [])
        with autograd.record():
            out = loss(*args)
            total = out.sum()
        total.backward()
        nd.waitall()
        res = {"output": tensor(out)}
        res["grads"] = {k: tensor(arrays[k].grad) for k in grad_names}
        return res
    except Exception as e:  # MXNet's answer for this case is that it raises
        return raised(e)


def loss_cases():
    cases = []
    B, C = 4, 3
    r = rng(1)
    pred = arr(r.uniform(-2, 2, (B, C)))
    label = arr(r.uniform(-2, 2, (B, C)))
    sw_b1 = arr([[0.5], [2.0], [0.0], [2.5]])
    sw_b = arr([0.5, 2.0, 0.0, 2.5])
    weight = 0.7

    def add(name, loss_name, options, make, inputs, grads, sw=None, sw_label=None,
            weight_opt=None, extra=None, extra_fixture=None):
        opts = dict(options)
        if weight_opt is not None:
            opts["weight"] = weight_opt
        loss = make(**opts)
        case = {
            "name": name,
            "loss": loss_name,
            "options": opts,
            "inputs": {k: tensor(v) for k, v in inputs.items()},
        }
        if sw is not None:
            case["sample_weight"] = tensor(sw)
            case["sample_weight_form"] = sw_label
        if extra_fixture:
            case["extra_inputs"] = {k: tensor(v) for k, v in extra_fixture.items()}
        case.update(run_loss(loss, inputs, grads, sw, extra))
        cases.append(case)

    def variants(base, loss_name, options, make, inputs, grads, sw_forms=True, **kw):
        add(base, loss_name, options, make, inputs, grads, **kw)
        add(base + "/weight", loss_name, options, make, inputs, grads, weight_opt=weight, **kw)
        if sw_forms:
            add(base + "/sw[b,1]", loss_name, options, make, inputs, grads,
                sw=sw_b1, sw_label="[batch,1]", **kw)
            add(base + "/sw[b]", loss_name, options, make, inputs, grads,
                sw=sw_b, sw_label="[batch]", **kw)
            add(base + "/weight+sw[b,1]", loss_name, options, make, inputs, grads,
                sw=sw_b1, sw_label="[batch,1]", weight_opt=weight, **kw)

    L = gluon.loss
    reg = {"pred": pred, "label": label}
    variants("L2Loss", "L2Loss", {}, L.L2Loss, reg, ["pred"])
    variants("L1Loss", "L1Loss", {}, L.L1Loss, reg, ["pred"])
    variants("HuberLoss/rho=1", "HuberLoss", {"rho": 1.0}, L.HuberLoss, reg, ["pred"])
    variants("HuberLoss/rho=0.5", "HuberLoss", {"rho": 0.5}, L.HuberLoss, reg, ["pred"],
             sw_forms=False)
    # A [batch] prediction: the [batch] and [batch,1] weights both weigh per sample.
    add("L2Loss/pred[b]/sw[b]", "L2Loss", {}, L.L2Loss,
        {"pred": pred[:, 0], "label": label[:, 0]}, ["pred"], sw=sw_b, sw_label="[batch]")
    add("L2Loss/pred[b]/sw[b,1]", "L2Loss", {}, L.L2Loss,
        {"pred": pred[:, 0], "label": label[:, 0]}, ["pred"], sw=sw_b1,
        sw_label="[batch,1]")

    # Sigmoid binary cross-entropy: logits, or probabilities (from_sigmoid); labels 0/1
    # and one soft label.
    y01 = arr([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0.3]])
    prob = arr(r.uniform(0.05, 0.95, (B, C)))
    pos_weight = arr([[2.0, 0.5, 1.5]])
    bce = {"pred": pred, "label": y01}
    variants("SigmoidBCE/logits", "SigmoidBinaryCrossEntropyLoss", {"from_sigmoid": False},
             L.SigmoidBinaryCrossEntropyLoss, bce, ["pred"])
    variants("SigmoidBCE/from_sigmoid", "SigmoidBinaryCrossEntropyLoss",
             {"from_sigmoid": True}, L.SigmoidBinaryCrossEntropyLoss,
             {"pred": prob, "label": y01}, ["pred"])
    for fs, p in [(False, pred), (True, prob)]:
        tag = "from_sigmoid" if fs else "logits"
        add("SigmoidBCE/%s/pos_weight[1,C]" % tag, "SigmoidBinaryCrossEntropyLoss",
            {"from_sigmoid": fs}, L.SigmoidBinaryCrossEntropyLoss,
            {"pred": p, "label": y01}, ["pred"], extra=[nd.array(pos_weight)],
            extra_fixture={"pos_weight": pos_weight})
        add("SigmoidBCE/%s/pos_weight[1,C]/weight+sw[b,1]" % tag,
            "SigmoidBinaryCrossEntropyLoss", {"from_sigmoid": fs},
            L.SigmoidBinaryCrossEntropyLoss, {"pred": p, "label": y01}, ["pred"],
            sw=sw_b1, sw_label="[batch,1]", weight_opt=weight,
            extra=[nd.array(pos_weight)],
            extra_fixture={"pos_weight": pos_weight})

    # Softmax cross-entropy: sparse labels (class ids as floats), dense labels,
    # from_logits (pred already log-probabilities), and the class axis not last.
    K = 5
    scores = arr(r.uniform(-2, 2, (B, K)))
    sparse = arr([1, 4, 0, 2])
    dense = arr(r.uniform(0.1, 1.0, (B, K)))
    dense = arr(dense / dense.sum(axis=1, keepdims=True))
    logp = nd.log_softmax(nd.array(scores)).asnumpy().astype(F32)
    variants("SoftmaxCE/sparse", "SoftmaxCrossEntropyLoss", {"sparse_label": True},
             L.SoftmaxCrossEntropyLoss, {"pred": scores, "label": sparse}, ["pred"])
    variants("SoftmaxCE/dense", "SoftmaxCrossEntropyLoss", {"sparse_label": False},
             L.SoftmaxCrossEntropyLoss, {"pred": scores, "label": dense}, ["pred"],
             sw_forms=False)
    add("SoftmaxCE/dense/sw[b,1]", "SoftmaxCrossEntropyLoss", {"sparse_label": False},
        L.SoftmaxCrossEntropyLoss, {"pred": scores, "label": dense}, ["pred"], sw=sw_b1,
        sw_label="[batch,1]")
    add("SoftmaxCE/sparse/from_logits", "SoftmaxCrossEntropyLoss",
        {"sparse_label": True, "from_logits": True}, L.SoftmaxCrossEntropyLoss,
        {"pred": logp, "label": sparse}, ["pred"])
    add("SoftmaxCE/dense/from_logits", "SoftmaxCrossEntropyLoss",
        {"sparse_label": False, "from_logits": True}, L.SoftmaxCrossEntropyLoss,
        {"pred": logp, "label": dense}, ["pred"])
    # Class axis 1 of [2, 3, 4] (3 classes, 4 positions): labels [2, 4] or [2, 3, 4].
    s3 = arr(r.uniform(-2, 2, (2, 3, 4)))
    sp3 = arr([[0, 2, 1, 1], [2, 0, 0, 1]])
    d3 = arr(r.uniform(0.1, 1.0, (2, 3, 4)))
    d3 = arr(d3 / d3.sum(axis=1, keepdims=True))
    for sparse_label, lab in [(True, sp3), (False, d3)]:
        tag = "sparse" if sparse_label else "dense"
        add("SoftmaxCE/%s/axis=1" % tag, "SoftmaxCrossEntropyLoss",
            {"axis": 1, "sparse_label": sparse_label}, L.SoftmaxCrossEntropyLoss,
            {"pred": s3, "label": lab}, ["pred"])
        add("SoftmaxCE/%s/axis=1/weight" % tag, "SoftmaxCrossEntropyLoss",
            {"axis": 1, "sparse_label": sparse_label}, L.SoftmaxCrossEntropyLoss,
            {"pred": s3, "label": lab}, ["pred"], weight_opt=weight)

    # KL divergence: label a distribution, pred log-probabilities (from_logits) or scores.
    dist = arr(r.uniform(0.1, 1.0, (B, C)))
    dist = arr(dist / dist.sum(axis=1, keepdims=True))
    logq = nd.log_softmax(nd.array(pred)).asnumpy().astype(F32)
    variants("KLDivLoss/from_logits", "KLDivLoss", {"from_logits": True}, L.KLDivLoss,
             {"pred": logq, "label": dist}, ["pred"])
    variants("KLDivLoss/scores", "KLDivLoss", {"from_logits": False}, L.KLDivLoss,
             {"pred": pred, "label": dist}, ["pred"], sw_forms=False)
    add("KLDivLoss/scores/sw[b,1]", "KLDivLoss", {"from_logits": False}, L.KLDivLoss,
        {"pred": pred, "label": dist}, ["pred"], sw=sw_b1, sw_label="[batch,1]")
    d3k = arr(r.uniform(0.1, 1.0, (2, 3, 4)))
    d3k = arr(d3k / d3k.sum(axis=1, keepdims=True))
    add("KLDivLoss/scores/axis=1", "KLDivLoss", {"from_logits": False, "axis": 1},
        L.KLDivLoss, {"pred": s3, "label": d3k}, ["pred"])

    # Margin losses with labels -1/1 (no |pred·label| exactly at the margin).
    signed = arr([[1, -1, 1], [-1, -1, 1], [1, 1, -1], [-1, 1, -1]])
    binary = arr((signed + 1) / 2)
    variants("HingeLoss", "HingeLoss", {}, L.HingeLoss, {"pred": pred, "label": signed},
             ["pred"])
    add("HingeLoss/margin=2", "HingeLoss", {"margin": 2.0}, L.HingeLoss,
        {"pred": pred, "label": signed}, ["pred"])
    variants("SquaredHingeLoss", "SquaredHingeLoss", {}, L.SquaredHingeLoss,
             {"pred": pred, "label": signed}, ["pred"], sw_forms=False)
    variants("LogisticLoss/signed", "LogisticLoss", {"label_format": "signed"},
             L.LogisticLoss, {"pred": pred, "label": signed}, ["pred"])
    add("LogisticLoss/binary", "LogisticLoss", {"label_format": "binary"}, L.LogisticLoss,
        {"pred": pred, "label": binary}, ["pred"])
    add("LogisticLoss/binary/weight+sw[b,1]", "LogisticLoss", {"label_format": "binary"},
        L.LogisticLoss, {"pred": pred, "label": binary}, ["pred"], sw=sw_b1,
        sw_label="[batch,1]", weight_opt=weight)

    # Cosine embedding: pairs of [batch, dim] vectors, labels 1 / -1 (and 0, which adds 0).
    a = arr(r.uniform(-1, 1, (5, 4)))
    b = arr(r.uniform(-1, 1, (5, 4)))
    ylab = arr([1, -1, 1, -1, 0])
    sw5_1 = arr([[0.5], [2.0], [1.0], [1.5], [3.0]])
    sw5 = arr([0.5, 2.0, 1.0, 1.5, 3.0])
    cos_in = {"input1": a, "input2": b, "label": ylab}
    for margin in [0.0, 0.2]:
        base = "CosineEmbeddingLoss/margin=%g" % margin
        mk = L.CosineEmbeddingLoss
        add(base, "CosineEmbeddingLoss", {"margin": margin}, mk, cos_in,
            ["input1", "input2"])
        add(base + "/weight", "CosineEmbeddingLoss", {"margin": margin}, mk, cos_in,
            ["input1", "input2"], weight_opt=weight)
    add("CosineEmbeddingLoss/margin=0.2/sw[b,1]", "CosineEmbeddingLoss", {"margin": 0.2},
        L.CosineEmbeddingLoss, cos_in, ["input1", "input2"], sw=sw5_1,
        sw_label="[batch,1]")
    add("CosineEmbeddingLoss/margin=0.2/sw[b]", "CosineEmbeddingLoss", {"margin": 0.2},
        L.CosineEmbeddingLoss, cos_in, ["input1", "input2"], sw=sw5, sw_label="[batch]")

    # Triplet: anchor (pred), positive, negative [batch, dim].
    anc = arr(r.uniform(-1, 1, (5, 3)))
    pos = arr(anc + r.uniform(-0.6, 0.6, (5, 3)))
    neg = arr(r.uniform(-1, 1, (5, 3)))
    tri = {"pred": anc, "positive": pos, "negative": neg}
    for margin in [1.0, 0.3]:
        base = "TripletLoss/margin=%g" % margin
        add(base, "TripletLoss", {"margin": margin}, L.TripletLoss, tri,
            ["pred", "positive", "negative"])
        add(base + "/weight", "TripletLoss", {"margin": margin}, L.TripletLoss, tri,
            ["pred", "positive", "negative"], weight_opt=weight)
    add("TripletLoss/margin=1/sw[b,1]", "TripletLoss", {"margin": 1.0}, L.TripletLoss, tri,
        ["pred", "positive", "negative"], sw=sw5_1, sw_label="[batch,1]")
    return cases


# ------------------------------------------------------------------------- optimizers


def optimizer_cases():
    w0 = arr([0.5, -0.3, 0.8, -1.2, 0.05, 2.0])
    # Gradients summed over a batch of 4: rescale_grad = 1/4. Several rescaled values
    # exceed clip_gradient 0.5 and several sit near it, so both the clip and where the
    # decay term goes relative to it show.
    grads = arr([
        [0.4, -1.2, 3.0, 2.2, -0.1, 1.96],
        [-2.6, 0.8, 1.0, -4.0, 1.5, 0.2],
        [1.9, 1.9, -0.7, 0.3, -3.1, 2.5],
        [0.05, -0.4, 2.4, 1.2, 0.9, -1.8],
        [-1.0, 2.1, -2.2, 0.6, 0.0, 1.1],
    ])
    batch_size = 4
    common = {"learning_rate": 0.1, "wd": 0.1, "clip_gradient": 0.5}
    configs = [
        ("sgd", "sgd", {"momentum": 0.0}),
        ("sgd/momentum=0.9", "sgd", {"momentum": 0.9}),
        ("nag/momentum=0.9", "nag", {"momentum": 0.9}),
        # MXNet's nag_mom_update, run in place (out=weight), adds the decay term to the
        # momentum with the already-updated weight; without decay that cannot show.
        ("nag/momentum=0.9/wd=0", "nag", {"momentum": 0.9, "wd": 0.0}),
        ("adam", "adam", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
        ("adam/beta1=0.5", "adam", {"beta1": 0.5, "beta2": 0.9, "epsilon": 1e-3}),
        ("rmsprop", "rmsprop", {"gamma1": 0.9, "epsilon": 1e-8, "centered": False}),
        ("rmsprop/centered", "rmsprop",
         {"gamma1": 0.9, "gamma2": 0.9, "epsilon": 1e-8, "centered": True}),
        ("adagrad", "adagrad", {"eps": 1e-7}),
        ("ftrl", "ftrl", {"lamda1": 0.01, "beta": 1.0}),
        ("adamw", "adamw", {}),
    ]
    cases = []
    registry = mx.optimizer.Optimizer.opt_registry
    for name, opt, own in configs:
        params = dict(common)
        params.update(own)
        case = {
            "name": name,
            "optimizer": opt,
            "params": params,
            "batch_size": batch_size,
            "rescale_grad": 1.0 / batch_size,
            "weight0": tensor(w0),
            "grads": [tensor(g) for g in grads],
        }
        if opt not in registry:
            case["absent"] = "mx.optimizer has no '%s' in MXNet %s" % (opt, mx.__version__)
            cases.append(case)
            continue
        try:
            p = gluon.Parameter("w", shape=w0.shape)
            p.initialize(ctx=mx.cpu())
            p.set_data(nd.array(w0))
            trainer = gluon.Trainer([p], opt, dict(params), kvstore=None)
            weights = []
            for g in grads:
                # The gradient of sum(w * g) is g: a backward leaves exactly g in
                # p.grad() and marks it fresh for the Trainer.
                with autograd.record():
                    objective = (p.data() * nd.array(g)).sum()
                objective.backward()
                trainer.step(batch_size)
                weights.append(tensor(p.data()))
            nd.waitall()
            case["weights"] = weights
        except Exception as e:
            case.update(raised(e))
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------- metrics


def metric_cases():
    r = rng(7)
    sizes = [4, 2, 3]
    cases = []

    def run(name, make, batches, note=None):
        m = make()
        values = []
        err = None
        for lab, pr in batches:
            try:
                m.update([nd.array(lab)], [nd.array(pr)])
                values.append(num(m.get()[1]))
            except Exception as e:
                err = raised(e)
                break
        case = {
            "name": name,
            "metric": type(m).__name__,
            "batches": [{"label": tensor(lab), "pred": tensor(pr)} for lab, pr in batches],
        }
        if note:
            case["note"] = note
        if err:
            case.update(err)
        else:
            case["values"] = values
        cases.append(case)

    reg = [(arr(r.uniform(0, 5, n)), arr(r.uniform(0, 5, (n, 1)))) for n in sizes]
    run("RMSE", mx.metric.RMSE, reg, "MXNet averages per-update RMSEs")
    run("MSE", mx.metric.MSE, reg, "MXNet averages per-update MSEs")
    run("MAE", mx.metric.MAE, reg, "MXNet averages per-update MAEs")
    # PearsonCorrelation needs labels and predictions of one shape.
    flat = [(lab, arr(pr.ravel())) for lab, pr in reg]
    run("PearsonCorrelation/macro", lambda: mx.metric.PearsonCorrelation(average="macro"),
        flat, "the default: per-update correlations averaged")
    run("PearsonCorrelation/micro", lambda: mx.metric.PearsonCorrelation(average="micro"),
        flat, "every element pooled")

    cls = []
    for n in sizes:
        cls.append((arr(r.randint(0, 3, n)), arr(r.uniform(0, 1, (n, 3)))))
    run("Accuracy/scores", mx.metric.Accuracy, cls)
    # Non-integer class ids: MXNet truncates labels (and id predictions) with astype(int32).
    frac = [
        (arr([1.7, 0.3, 2.0, 1.2]), arr([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1],
                                         [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])),
        (arr([0.9, 2.5]), arr([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])),
    ]
    run("Accuracy/fractional_labels", mx.metric.Accuracy, frac)
    ids = [
        (arr([1, 0, 2, 1]), arr([1.9, 0.2, 1.6, 1.0])),
        (arr([2, 2, 0]), arr([2.4, 1.1, 0.0])),
    ]
    run("Accuracy/class_id_preds", mx.metric.Accuracy, ids)

    topk = []
    for n in sizes:
        s = r.permutation(n * 4).reshape(n, 4).astype(F32) / 10.0  # no ties
        topk.append((arr(r.randint(0, 4, n)), arr(s)))
    run("TopKAccuracy/k=2", lambda: mx.metric.TopKAccuracy(top_k=2), topk)
    run("TopKAccuracy/k=3", lambda: mx.metric.TopKAccuracy(top_k=3), topk)

    f1 = [
        (arr([1, 0, 1, 1]), arr([[0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])),
        (arr([0, 1]), arr([[0.3, 0.7], [0.2, 0.8]])),
        (arr([1, 0, 0]), arr([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]])),
    ]
    run("F1/macro", lambda: mx.metric.F1(average="macro"), f1,
        "the default: per-update F1 scores averaged")
    run("F1/micro", lambda: mx.metric.F1(average="micro"), f1, "counts pooled")

    probs = []
    for n in sizes:
        p = r.uniform(0.1, 1.0, (n, 4))
        probs.append((arr(r.randint(0, 4, n)), arr(p / p.sum(axis=1, keepdims=True))))
    run("CrossEntropy", mx.metric.CrossEntropy, probs)
    run("Perplexity", lambda: mx.metric.Perplexity(ignore_label=None), probs)

    losses = [(arr(np.zeros(n)), arr(r.uniform(0, 3, n))) for n in sizes]
    losses[1] = (losses[1][0], arr(r.uniform(0, 3, (2, 1))))
    run("Loss", mx.metric.Loss, losses)
    return cases


# ----------------------------------------------------------------------------- layers


def run_block(block, x, head, params, train, backward=True, dtype="float32"):
    """Forward (under record with train_mode=train) and, if backward, backward with
    head gradient `head` (the gradient of (out * head).sum()); returns the output, the
    input and parameter gradients, and every parameter's value afterwards."""
    xs = nd.array(x, dtype=dtype)
    if dtype == "float32":
        xs.attach_grad()
    with autograd.record(train_mode=train):
        out = block(xs)
    res = {"output": tensor(out)}
    if backward:
        out.backward(nd.array(head))
        if dtype == "float32":
            res["input_grad"] = tensor(xs.grad)
        res["param_grads"] = {
            k: tensor(p.grad()) for k, p in params.items() if p.grad_req != "null"
        }
    nd.waitall()
    res["params_after"] = {k: tensor(p.data()) for k, p in params.items()}
    return res


def named_params(block):
    """Gluon parameters under their short names (weight, bias, gamma, running_mean...)."""
    out = {}
    for full, p in block.collect_params().items():
        out[full.split("_", 1)[1] if "_" in full else full] = p
    return out


def layer_cases():
    r = rng(11)
    cases = []

    def case(name, layer, options, params0, x, head, modes, dtype="float32"):
        c = {
            "name": name,
            "layer": layer,
            "options": options,
            "params": {k: tensor(v) for k, v in params0.items()},
            "input": tensor(x),
            "head_grad": tensor(head),
        }
        c.update(modes)
        cases.append(c)

    def set_params(block, values):
        ps = named_params(block)
        for k, v in values.items():
            ps[k].set_data(nd.array(v))
        return ps

    # Dense with given weight [units, in_units] and bias.
    W = arr(r.uniform(-1, 1, (3, 4)))
    b = arr(r.uniform(-0.5, 0.5, 3))
    for name, opts, x in [
        ("Dense/flatten", {"units": 3, "flatten": True, "activation": None},
         arr(r.uniform(-1, 1, (2, 2, 2)))),
        ("Dense/tanh", {"units": 3, "flatten": True, "activation": "tanh"},
         arr(r.uniform(-1, 1, (2, 4)))),
        ("Dense/no_flatten/relu", {"units": 3, "flatten": False, "activation": "relu"},
         arr(r.uniform(-1, 1, (2, 2, 4)))),
    ]:
        modes = {}
        out_shape = (x.shape[0], 3) if opts["flatten"] else x.shape[:-1] + (3,)
        head = arr(r.uniform(-1, 1, out_shape))
        for mode, train in [("train", True), ("predict", False)]:
            blk = gluon.nn.Dense(opts["units"], activation=opts["activation"],
                                 flatten=opts["flatten"], in_units=4)
            blk.initialize()
            ps = set_params(blk, {"weight": W, "bias": b})
            modes[mode] = run_block(blk, x, head, ps, train)
        case(name, "Dense", opts, {"weight": W, "bias": b}, x, head, modes)

    # Embedding: 5 rows of 3; indices with a repeat, so a row's gradient sums.
    E = arr(r.uniform(-1, 1, (5, 3)))
    idx = np.array([[0, 2], [4, 2]], dtype=F32)
    head = arr(r.uniform(-1, 1, (2, 2, 3)))
    modes = {}
    for mode, train in [("train", True), ("predict", False)]:
        blk = gluon.nn.Embedding(5, 3)
        blk.initialize()
        ps = set_params(blk, {"weight": E})
        xs = nd.array(idx)
        with autograd.record(train_mode=train):
            out = blk(xs)
        out.backward(nd.array(head))
        modes[mode] = {"output": tensor(out),
                       "param_grads": {"weight": tensor(ps["weight"].grad())}}
    case("Embedding", "Embedding", {"input_dim": 5, "output_dim": 3}, {"weight": E},
         idx, head, modes)

    # BatchNorm over channels (axis 1) with given gamma, beta and running statistics.
    for name, shape in [("BatchNorm/[4,3]", (4, 3)), ("BatchNorm/[2,3,2]", (2, 3, 2))]:
        x = arr(r.uniform(-2, 2, shape))
        head = arr(r.uniform(-1, 1, shape))
        p0 = {
            "gamma": arr([1.5, 0.5, -1.0]),
            "beta": arr([0.1, -0.2, 0.3]),
            "running_mean": arr([0.2, -0.1, 0.0]),
            "running_var": arr([1.0, 2.0, 0.5]),
        }
        modes = {}

        def fresh():
            blk = gluon.nn.BatchNorm(momentum=0.9, epsilon=1e-5, in_channels=3)
            blk.initialize()
            return blk, set_params(blk, p0)

        # Train mode, forward then backward, then predict with the updated statistics.
        blk, ps = fresh()
        modes["train"] = run_block(blk, x, head, ps, True)
        modes["predict_after_train"] = run_block(blk, x, head, ps, False, backward=False)
        # Train-mode forward with no backward: what happens to the running statistics.
        blk, ps = fresh()
        modes["train_forward_only"] = run_block(blk, x, head, ps, True, backward=False)
        # Train-mode forward outside autograd.record (autograd.train_mode only).
        blk, ps = fresh()
        with autograd.train_mode():
            out = blk(nd.array(x))
        nd.waitall()
        modes["train_mode_no_record"] = {
            "output": tensor(out),
            "params_after": {k: tensor(p.data()) for k, p in ps.items()},
        }
        # Predict mode from the initial statistics (with backward).
        blk, ps = fresh()
        modes["predict"] = run_block(blk, x, head, ps, False)
        case(name, "BatchNorm", {"momentum": 0.9, "epsilon": 1e-5, "in_channels": 3}, p0,
             x, head, modes)

    # LayerNorm over the last axis.
    x = arr(r.uniform(-2, 2, (3, 4)))
    head = arr(r.uniform(-1, 1, (3, 4)))
    p0 = {"gamma": arr([1.5, 0.5, -1.0, 2.0]), "beta": arr([0.1, -0.2, 0.3, 0.0])}
    modes = {}
    for mode, train in [("train", True), ("predict", False)]:
        blk = gluon.nn.LayerNorm(epsilon=1e-5, in_channels=4)
        blk.initialize()
        ps = set_params(blk, p0)
        modes[mode] = run_block(blk, x, head, ps, train)
    case("LayerNorm", "LayerNorm", {"epsilon": 1e-5, "in_channels": 4}, p0, x, head, modes)

    # Flatten.
    x = arr(r.uniform(-2, 2, (2, 3, 2)))
    head = arr(r.uniform(-1, 1, (2, 6)))
    modes = {}
    for mode, train in [("train", True), ("predict", False)]:
        blk = gluon.nn.Flatten()
        modes[mode] = run_block(blk, x, head, {}, train)
    case("Flatten", "Flatten", {}, {}, x, head, modes)
    return cases


# ------------------------------------------------------------------------- DataLoader


def dataloader_cases():
    cases = []
    for n, bs in [(10, 4), (7, 3), (5, 2), (6, 3)]:
        for last in ["keep", "discard", "rollover"]:
            loader = gluon.data.DataLoader(gluon.data.ArrayDataset(list(range(n))),
                                           batch_size=bs, last_batch=last, shuffle=False)
            epochs = []
            for _ in range(3):
                length = len(loader)
                batches = [[int(v) for v in b.asnumpy().ravel()] for b in loader]
                epochs.append({"len": length, "batches": batches})
            cases.append({"name": "n=%d/batch_size=%d/%s" % (n, bs, last), "n": n,
                          "batch_size": bs, "last_batch": last, "epochs": epochs})
    return cases


# ------------------------------------------------------------------------------- main


def write(out_dir, name, cases):
    """One JSON document per file: the provenance fields, then one case per line (small
    files, readable diffs)."""
    path = os.path.join(out_dir, name + ".json")
    compact = {"separators": (",", ":"), "allow_nan": False}
    with open(path, "w") as f:
        f.write("{\n")
        for k, v in meta().items():
            f.write("%s: %s,\n" % (json.dumps(k), json.dumps(v)))
        f.write('"cases": [\n')
        f.write(",\n".join(json.dumps(c, **compact) for c in cases))
        f.write("\n]\n}\n")
    print("wrote %s (%d cases)" % (path, len(cases)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/gluon")
    args = ap.parse_args()
    if mx.__version__ != "1.9.1":
        print("warning: expected MXNet 1.9.1, running %s" % mx.__version__, file=sys.stderr)
    mx.random.seed(0)
    np.random.seed(0)
    os.makedirs(args.out, exist_ok=True)
    write(args.out, "losses", loss_cases())
    write(args.out, "optimizers", optimizer_cases())
    write(args.out, "metrics", metric_cases())
    write(args.out, "layers", layer_cases())
    write(args.out, "dataloader", dataloader_cases())


if __name__ == "__main__":
    main()
