"""An image set in memory (:class:`ImageSet`: uint8 images, labels, class names and where they came from), the
conversion to a model's input (:func:`to_model_input`) and the fixed seeded subsets evaluations read
(:func:`subset_indices`)."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import LotusError


@dataclass
class ImageSet:
    """A labelled image set held in memory.

    Attributes:
        name: registry name, e.g. ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        images: ``(N, C, H, W)`` uint8 tensor.
        labels: ``(N,)`` int64 tensor of class indices.
        classes: class names, indexed by label.
        source: where the data was read from (a path or "embedded subset").
        notes: caveats shown with the data (e.g. "embedded 10,000-image training subset").
        split_rule: how the training and test images were told apart, in words.
        holdout: ``(test fraction, seed)`` when LOTUS drew the split itself (a flat image folder).
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    notes: list[str] = field(default_factory=list)
    split_rule: str = "the dataset's own train/test split"  # how train and test were told apart (shown to users)
    holdout: tuple[float, int] | None = None  # (test fraction, seed) of a split drawn by LOTUS (a flat folder)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the split's content (images, labels, class names): which data a result saw."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images.numpy()).tobytes())
        h.update(np.ascontiguousarray(self.labels.numpy()).tobytes())
        h.update("\n".join(self.classes).encode())
        return h.hexdigest()

    @property
    def variant(self) -> str:
        """``"<images>@<digest prefix>"``, e.g. ``"10000@1f3a..."`` for the embedded training subset; part of
        every result key, so the embedded subset and the full set never share a result. A split LOTUS
        drew itself also names its fraction and seed: ``"1437@...+holdout0.2s0"``."""
        drawn = f"+holdout{self.holdout[0]:g}s{self.holdout[1]}" if self.holdout else ""
        return f"{len(self)}@{self.digest[:16]}{drawn}"

    def mean_pixel(self) -> torch.Tensor:
        """Per-channel mean in [0, 1], shape ``(C,)`` (the fill value for dropped patches)."""
        return self.images.float().mean(dim=(0, 2, 3)) / 255.0



def to_model_input(images: torch.Tensor, data_config: dict) -> torch.Tensor:
    """Convert uint8 images ``(B, C, H, W)`` to a model's normalised float input.

    Channels are adapted (grayscale repeated to RGB, RGB averaged to grayscale), images are
    resized (bilinear, antialiased) to ``data_config['input_size']`` and normalised with its
    ``mean`` and ``std`` (timm's data config keys).
    """
    c, h, w = data_config["input_size"]
    x = images.float().div_(255.0)
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else x
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(data_config["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def subset_indices(n_total: int, limit: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded subset of ``limit`` indices out of ``n_total`` (sorted; all when limit is None or too big)."""
    if limit is not None and limit <= 0:
        raise LotusError(f"--limit must be a positive number of images, got {limit}")
    if limit is None or limit >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:limit].sort().values
