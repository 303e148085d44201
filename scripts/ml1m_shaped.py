#!/usr/bin/env python3
"""Writes a RecBole-style .inter file of MovieLens-1M's shape, for timing the sequence
models where ML-1M itself is not at hand: 6,040 users with at least 20 ratings each and
a long tail (ML-1M's mean is 165), 3,706 items drawn with Zipf popularity, 1,000,209
ratings with increasing timestamps per user. Its values mean nothing: it is for speed
only (same sizes, same sequence lengths), never for quality.

    python3 scripts/ml1m_shaped.py data/ml1m-shaped.inter
"""
import random
import sys

USERS, ITEMS, RATINGS, MIN_PER_USER, SEED = 6040, 3706, 1_000_209, 20, 1


def main(path):
    rng = random.Random(SEED)
    # Log-normal activity scaled to the total, each user at least MIN_PER_USER and at
    # most the catalogue.
    raw = [rng.lognormvariate(0.0, 1.0) for _ in range(USERS)]
    spare = RATINGS - USERS * MIN_PER_USER
    counts = [MIN_PER_USER + int(spare * r / sum(raw)) for r in raw]
    counts[0] += RATINGS - sum(counts)
    counts = [min(c, ITEMS) for c in counts]
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(ITEMS)]
    with open(path, "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user, count in enumerate(counts):
            seen = set()
            while len(seen) < count:
                seen.update(rng.choices(range(ITEMS), weights, k=count - len(seen)))
            t = 978_300_000 + rng.randrange(10_000_000)
            for item in rng.sample(sorted(seen), count):
                t += rng.randrange(1, 600)
                f.write(f"{user}\t{item}\t{rng.randint(1, 5)}\t{t}\n")


if __name__ == "__main__":
    main(sys.argv[1])
