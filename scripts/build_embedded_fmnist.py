"""Rebuild the embedded Fashion-MNIST copy in data/fashion-mnist/ from a full local copy.

The embedded copy is the whole test split and a fixed, class-balanced 10,000-image training
subset (1,000 per class, drawn with ``--seed``), gzipped IDX files written byte-for-byte
reproducibly (``mtime=0``). Run from the repository root:

    PYTHONPATH=$PWD python scripts/build_embedded_fmnist.py --source /usr/share/fashion-mnist
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from lotus_core.core.paths import DEBIAN_FMNIST, EMBEDDED_FMNIST
from lotus_core.data.sources import read_idx

EMBEDDED_TRAIN_SIZE = 10_000


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (used to build the embedded subset)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def build_embedded_fmnist(source: Path = DEBIAN_FMNIST, dest: Path = EMBEDDED_FMNIST,
                          train_size: int = EMBEDDED_TRAIN_SIZE, seed: int = 0) -> list[Path]:
    """Copy the test split and a fixed, class-balanced training subset into ``data/``."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        arr = read_idx(source / f"{name}.gz")
        write_idx(dest / f"{name}.gz", arr)
        written.append(dest / f"{name}.gz")
    images, labels = read_idx(source / "train-images-idx3-ubyte.gz"), read_idx(source / "train-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    per_class = train_size // 10
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]))
    for name, arr in (("train-subset-images-idx3-ubyte", images[idx]), ("train-subset-labels-idx1-ubyte", labels[idx])):
        write_idx(dest / f"{name}.gz", arr)
        written.append(dest / f"{name}.gz")
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_FMNIST, help="folder with the full IDX files")
    parser.add_argument("--dest", type=Path, default=EMBEDDED_FMNIST)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in build_embedded_fmnist(args.source, args.dest, seed=args.seed):
        print(path)
