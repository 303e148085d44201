#!/usr/bin/env python3
"""PyTorch reference for the recommender's `--model sasrec`, written from the papers
(Kang & McAuley 2018; cross-entropy over all items as Klenitskiy & Vasilev 2023): the same
split, model, loss, optimizer and evaluation as boson's, for side-by-side speed and
quality on the same file.

    /work/.venv-torch/bin/python scripts/sasrec_torch.py data/ml-100k/ml-100k.inter \
        --threads 2 --epochs 200 --patience 10

Split: each user's latest interaction (by timestamp, ties to the later line) is the test
item, the one before it the validation item (users with 3+), the rest train. Training
examples: each user's latest window of --seq-len items and the windows before it (every
train item after the first is a target once). Model:
item embeddings (one padding row) scaled by sqrt(d) plus learned positions, dropout,
pre-norm transformer layers (GELU feed-forward of d units) under causal and padding
masks, a final layer norm; scores are dot products with the item table. Loss: softmax
cross-entropy over every item at every non-padding position, leaving out (-inf) the
items the position has already seen in its window, its own target excepted. Evaluation: full ranking of
the held-out item among all items the user has not rated (train; train + validation for
test); HitRate@10, NDCG@10. Prints one JSON line.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn


def read_split(path):
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        cols = {name.split(":")[0]: k for k, name in enumerate(header)}
        for line_no, line in enumerate(f):
            p = line.rstrip("\n").split("\t")
            t = float(p[cols["timestamp"]]) if "timestamp" in cols else line_no
            rows.append((p[cols["user_id"]], p[cols["item_id"]], t, line_no))
    users, items = {}, {}
    for u, i, _, _ in rows:
        users.setdefault(u, len(users))
        items.setdefault(i, len(items))
    seqs = [[] for _ in users]
    for u, i, t, k in sorted(rows, key=lambda r: (users[r[0]], r[2], r[3])):
        seqs[users[u]].append(items[i])
    train, val, test = [], [], []
    for s in seqs:
        n = len(s)
        test.append(s[-1] if n >= 2 else None)
        val.append(s[-2] if n >= 3 else None)
        train.append(s[: n - (n >= 2) - (n >= 3)])
    return train, val, test, len(items)


class SasRec(nn.Module):
    def __init__(self, num_items, d, seq_len, blocks, heads, dropout):
        super().__init__()
        self.num_items, self.seq_len = num_items, seq_len
        self.items = nn.Embedding(num_items + 1, d)
        self.positions = nn.Embedding(seq_len, d)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d, heads, d, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.register_buffer(
            "causal", torch.triu(torch.full((seq_len, seq_len), float("-inf")), 1)
        )

    def encode(self, seq):
        pad = seq == self.num_items
        x = self.items(seq) * math.sqrt(self.items.embedding_dim)
        x = self.dropout(x + self.positions.weight[: seq.shape[1]])
        x = self.encoder(x, mask=self.causal, src_key_padding_mask=pad)
        return self.norm(x)

    def item_table(self):
        return self.items.weight[: self.num_items]


def padded(s, num_items, n):
    s = s[-n:]
    return [num_items] * (n - len(s)) + s


def windows(s, num_items, n):
    """The latest window of `s` and the ones before it, as boson's training_windows."""
    out, end = [], len(s)
    while end >= 2:
        out.append((padded(s[: end - 1], num_items, n), s[end - min(n, end - 1) : end]))
        if end - n < 2:
            break
        end -= n
    return out


def seen_local(inp, tgt, num_items):
    """Positions (row * num_items + item, rows from 0) of what each position has seen."""
    real = next((k for k, i in enumerate(inp) if i != num_items), len(inp))
    out = []
    for row, t in enumerate(range(real, len(inp))):
        out.extend(row * num_items + i for i in inp[real : t + 1] if i != tgt[row])
    return np.array(out, dtype=np.int64)


def evaluate(model, context, held, seen, num_items, seq_len):
    model.eval()
    hits, ndcg, n = 0.0, 0.0, 0
    users = [u for u, i in enumerate(held) if i is not None]
    with torch.no_grad():
        for k in range(0, len(users), 256):
            chunk = users[k : k + 256]
            seq = torch.tensor([padded(context[u], num_items, seq_len) for u in chunk])
            h = model.encode(seq)[:, -1]
            scores = (h @ model.item_table().T).numpy()
            for row, u in enumerate(chunk):
                s = scores[row]
                target = s[held[u]]
                s[list(seen[u])] = -np.inf
                rank = int((s > target).sum())
                n += 1
                if rank < 10:
                    hits += 1
                    ndcg += 1 / math.log2(rank + 2)
    model.train()
    return hits / n, ndcg / n


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("data")
    a.add_argument("--seq-len", type=int, default=200)
    a.add_argument("--dims", type=int, default=64)
    a.add_argument("--blocks", type=int, default=2)
    a.add_argument("--heads", type=int, default=1)
    a.add_argument("--dropout", type=float, default=0.2)
    a.add_argument("--lr", type=float, default=0.001)
    a.add_argument("--batch-size", type=int, default=128)
    a.add_argument("--epochs", type=int, default=200)
    a.add_argument("--patience", type=int, default=10)
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--seed", type=int, default=42)
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, val, test, num_items = read_split(args.data)
    n = args.seq_len
    examples = [w for s in train for w in windows(s, num_items, n)]
    masks = [seen_local(inp, tgt, num_items) for inp, tgt in examples]
    model = SasRec(num_items, args.dims, n, args.blocks, args.heads, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    seen_val = [set(s) for s in train]
    context_test = [s + ([v] if v is not None else []) for s, v in zip(train, val)]
    seen_test = [set(s) for s in context_test]
    best, best_state, since, train_s, positions, epochs = -1.0, None, 0, 0.0, 0, 0
    for epoch in range(args.epochs):
        order = rng.permutation(len(examples))
        start = time.perf_counter()
        total = 0.0
        for k in range(0, len(order), args.batch_size):
            picked = order[k : k + args.batch_size]
            batch = [examples[j] for j in picked]
            seq = torch.tensor([b[0] for b in batch])
            target = torch.tensor([t for b in batch for t in b[1]])
            starts = np.cumsum([0] + [len(b[1]) for b in batch[:-1]]) * num_items
            seen = torch.from_numpy(np.concatenate([masks[j] + o for j, o in zip(picked, starts)]))
            h = model.encode(seq).reshape(-1, args.dims)
            h = h[(seq != num_items).reshape(-1)]
            scores = (h @ model.item_table().T).flatten().index_fill(0, seen, float("-inf"))
            loss = nn.functional.cross_entropy(scores.view(len(target), num_items), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            positions += len(target)
        train_s += time.perf_counter() - start
        epochs += 1
        hr, nd = evaluate(model, train, val, seen_val, num_items, n)
        print(f"epoch {epoch} loss {total:.1f} validation hr@10 {hr:.4f} ndcg@10 {nd:.4f}", flush=True)
        if nd > best:
            best, since = nd, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= args.patience:
                break
    model.load_state_dict(best_state)
    hr, nd = evaluate(model, context_test, test, seen_test, num_items, n)
    print(
        json.dumps(
            {
                "validation_ndcg_at_10": best,
                "test_hit_rate_at_10": hr,
                "test_ndcg_at_10": nd,
                "epochs": epochs,
                "positions_per_sec": positions / train_s,
                "train_seconds": train_s,
                "torch": torch.__version__,
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
