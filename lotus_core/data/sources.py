"""Fashion-MNIST and CIFAR: where they are looked for, read from IDX files or torchvision.

Fashion-MNIST is looked for, in order: a folder given by ``root`` or ``$LOTUS_DATA_ROOT``,
the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist), a
torchvision download (when online), and finally the copy embedded in ``data/`` (the full
test split and a fixed 10,000-image training subset), so the default demo always works
offline. ``$LOTUS_NO_SYSTEM_DATA=1`` skips the system locations (the Debian package and the
download cache) and downloads, as on a fresh machine: CI runs the tests that way.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.errors import LotusError
from ..core.paths import DEBIAN_FMNIST, EMBEDDED_FMNIST, datasets_dir
from .images import ImageSet


FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def system_data_hidden() -> bool:
    """True when ``$LOTUS_NO_SYSTEM_DATA`` is set: behave as on a fresh machine (embedded data only)."""
    return bool(os.environ.get("LOTUS_NO_SYSTEM_DATA"))


def downloads_allowed() -> bool:
    """Downloads are attempted unless ``$LOTUS_OFFLINE`` or ``$LOTUS_NO_SYSTEM_DATA`` is set to a non-empty value."""
    return not (os.environ.get("LOTUS_OFFLINE") or system_data_hidden())


# --------------------------------------------------------------------------- idx files
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST family's format), gzipped or not."""
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise LotusError(f"cannot read {path}: {exc}; re-download or reinstall the dataset") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LotusError(f"{path} is not an IDX uint8 file; re-download or reinstall the dataset")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise LotusError(f"{path} is truncated ({data.size} of {int(np.prod(dims))} values); re-download it")
    return data.reshape(dims)


def _idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    for suffix in (".gz", ""):
        img, lab = folder / f"{prefix}-images-idx3-ubyte{suffix}", folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if img.exists() and lab.exists():
            images, labels = read_idx(img), read_idx(lab)
            if images.shape[0] != labels.shape[0]:
                raise LotusError(f"{img} has {images.shape[0]} images but {lab} has {labels.shape[0]} labels")
            return images, labels
    return None


# --------------------------------------------------------------------------- loaders
def fashion_mnist(split: str, root: Path | None) -> ImageSet:
    prefix = "train" if split == "train" else "t10k"
    system = () if system_data_hidden() else (datasets_dir() / "FashionMNIST" / "raw", datasets_dir(), DEBIAN_FMNIST)
    explicit = os.environ.get("LOTUS_DATA_ROOT") if system_data_hidden() else None
    if root is not None and not any(_idx_pair(f, prefix) for f in (Path(root), Path(root) / "FashionMNIST" / "raw")):
        raise LotusError(f"--data-root {root} holds no Fashion-MNIST {prefix}-images/labels idx files; pass the folder "
                         "that holds them, or leave --data-root out")  # never silently ignored
    candidates = [Path(p) for p in (root, *([Path(root) / "FashionMNIST" / "raw"] if root else []), explicit, *system)
                  if p]
    for folder in candidates:
        pair = _idx_pair(Path(folder), prefix)
        if pair is not None:
            return _from_arrays("fashion-mnist", split, pair, FASHION_MNIST_CLASSES, str(folder))
    if split == "train" and downloads_allowed():
        try:
            from torchvision.datasets import FashionMNIST

            ds = FashionMNIST(str(datasets_dir()), train=True, download=True)
            return _from_arrays("fashion-mnist", split, (ds.data.numpy(), ds.targets.numpy()),
                                FASHION_MNIST_CLASSES, str(datasets_dir()))
        except Exception:  # offline: fall back to the embedded copy below
            pass
    embedded_prefix = "train-subset" if split == "train" else "t10k"
    pair = _idx_pair(EMBEDDED_FMNIST, embedded_prefix)
    if pair is None:
        raise LotusError(
            f"Fashion-MNIST {split} split not found in {', '.join(map(str, candidates))} or {EMBEDDED_FMNIST}; "
            "run `apt-get install dataset-fashion-mnist` or set LOTUS_DATA_ROOT to a folder with the idx files"
        )
    ds = _from_arrays("fashion-mnist", split, pair, FASHION_MNIST_CLASSES, f"{EMBEDDED_FMNIST} (embedded)")
    if split == "train":
        ds.notes.append("embedded 10,000-image training subset (full set not found locally or online)")
    return ds


def _from_arrays(name: str, split: str, pair: tuple[np.ndarray, np.ndarray], classes: list[str], source: str) -> ImageSet:
    images, labels = pair
    images_t = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
    if images_t.ndim == 3:  # (N, H, W) grayscale
        images_t = images_t.unsqueeze(1)
    elif images_t.ndim == 4 and images_t.shape[-1] in (1, 3):  # (N, H, W, C)
        images_t = images_t.permute(0, 3, 1, 2).contiguous()
    return ImageSet(name, split, images_t, torch.tensor(np.asarray(labels), dtype=torch.int64), classes, source)


def cifar(which: str) -> Callable[[str, Path | None], ImageSet]:
    def load(split: str, root: Path | None) -> ImageSet:
        from torchvision.datasets import CIFAR10, CIFAR100

        cls = CIFAR10 if which == "cifar10" else CIFAR100
        folder = Path(root) if root else datasets_dir()
        try:
            ds = cls(str(folder), train=(split == "train"), download=downloads_allowed())
        except Exception as exc:  # torchvision raises RuntimeError or URLError depending on the failure
            raise LotusError(
                f"{which} not found under {folder} and could not be downloaded ({type(exc).__name__}); "
                f"go online or put the extracted '{cls.base_folder}' folder there (or pass --data-root)"
            ) from None
        return _from_arrays(which, split, (ds.data, np.asarray(ds.targets)), list(ds.classes), str(folder))

    return load
