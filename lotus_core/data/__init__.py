"""Datasets: one registry (:data:`DATASETS`), images held as uint8 tensors, converted per model on the fly.

Every dataset is loaded into an :class:`~lotus_core.data.images.ImageSet` of ``uint8`` images ``(N, C, H, W)``
and ``int64`` labels. Turning images into model input (channels, size, normalisation) is
:func:`~lotus_core.data.images.to_model_input`, driven by the model's timm data config, so one dataset serves both
the 28x28 grayscale default ViT and a 224x224 RGB hub model. Fashion-MNIST and CIFAR are read in
:mod:`~lotus_core.data.sources` (where they are looked for, and the embedded copy that keeps the demo offline);
image folders, their decoding and the split LOTUS draws for a flat folder in :mod:`~lotus_core.data.folders`.

This package is the layer right above ``core``: it imports nothing else of LOTUS.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..core.errors import LotusError
from .folders import image_folder
from .images import ImageSet
from .sources import cifar, fashion_mnist


def split_sizes(test: ImageSet, train: ImageSet) -> dict:
    """How many images each side of a dataset has, and how they were told apart (``info``, ``evaluate``,
    ``finetune`` and the Overview page say it)."""
    return {"train_images": len(train), "test_images": len(test), "split": test.split_rule}


def _class_subset(base: Callable[[str, Path | None], ImageSet], name: str, keep: range) -> Callable[..., ImageSet]:
    """``base`` restricted to the classes in ``keep``, relabelled 0..len(keep)-1 (a transfer split)."""
    def load(split: str, root: Path | None) -> ImageSet:
        full = base(split, root)
        sel = (full.labels >= keep.start) & (full.labels < keep.stop)
        return ImageSet(name, split, full.images[sel], full.labels[sel] - keep.start,
                        full.classes[keep.start:keep.stop], full.source, list(full.notes))

    return load


DATASETS: dict[str, Callable[..., ImageSet]] = {
    "fashion-mnist": fashion_mnist,
    # the transfer demo's upstream / downstream halves: a model pre-trained on five classes is
    # fine-tuned to the five it never saw (README "Transfer demo")
    "fashion-mnist-0to4": _class_subset(fashion_mnist, "fashion-mnist-0to4", range(0, 5)),
    "fashion-mnist-5to9": _class_subset(fashion_mnist, "fashion-mnist-5to9", range(5, 10)),
    "cifar10": cifar("cifar10"),
    "cifar100": cifar("cifar100"),
    "imagefolder": image_folder,
}
"""The dataset registry. ``imagefolder`` takes its directory as ``imagefolder:/path`` or ``root``."""


def load_dataset(name: str = "fashion-mnist", split: str = "test", root: str | Path | None = None) -> ImageSet:
    """Load a dataset split into memory.

    Args:
        name: a key of :data:`DATASETS`, ``imagefolder:/path/to/dir``, or a directory path.
        split: ``"train"`` or ``"test"``.
        root: optional folder to look in (or the image folder itself).
    """
    if split not in ("train", "test"):
        raise LotusError(f"unknown split {split!r}; use 'train' or 'test'")
    given_root = root
    if name.startswith("imagefolder:"):
        name, root = "imagefolder", name.split(":", 1)[1]
    elif name not in DATASETS and Path(name).is_dir():
        name, root = "imagefolder", name
    if name == "imagefolder" and given_root is not None and str(root) != str(given_root):
        raise LotusError("--data-root applies to named datasets; an image folder is given by --dataset alone, "
                         "so leave --data-root out")
    if name not in DATASETS:
        raise LotusError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or an image folder path")
    return DATASETS[name](split, Path(root) if root else None)


