"""The control: uniform random patch scores, seeded per image.

Image ``i`` (its dataset index) gets the scores ``numpy.random.default_rng([seed, i]).random(P)``,
so its scores do not depend on which other images share its batch. A scorer that does better
than this on the deletion and insertion curves has found something about the image.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .options import PatchBatch, ScoreOptions


def random_scores(model: nn.Module, batch: PatchBatch, options: ScoreOptions) -> torch.Tensor:
    """``(B, P)`` i.i.d. uniform [0, 1) scores, one seeded generator per image id."""
    p = batch.grid.num_patches
    rows = [np.random.default_rng([options.seed, int(i)]).random(p) for i in batch.ids.tolist()]
    return torch.from_numpy(np.stack(rows)).float() if rows else torch.empty(0, p)
