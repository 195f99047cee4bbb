"""Random pruning, the control of every paper in this field.

Global (uniformly random entries across all scoped weights, seeded) or, given ``options.like``,
with the layer-wise budget of another mask (the same number pruned in every tensor: open_lth's
``randomly_prune`` ``layerwise`` strategy). Counting and the audit: docs/audit.md.
"""
from __future__ import annotations

import torch

from ..core.errors import LotusError
from ..core.mask import Mask
from .ranking import GlobalRanking, MaskFn


def random_like(like: Mask, seed: int = 0) -> Mask:
    """A random mask with exactly ``like``'s number of pruned entries in every tensor (drawn on the
    CPU, so a seed gives the same mask on every device; returned on ``like``'s device)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, t in like.items():
        keep = torch.zeros(t.numel(), dtype=torch.bool)
        keep[torch.randperm(t.numel(), generator=g)[: int(t.sum())]] = True
        out[n] = keep.reshape(t.shape).to(t.device)
    return Mask(out)


def random_prune(params, options) -> MaskFn:
    if options.like is not None:
        if set(options.like) != set(params):
            raise LotusError("the mask given as layer-wise budget covers other parameters; use a mask of the same scope")
        return lambda sparsity: random_like(options.like, options.seed)
    g = torch.Generator().manual_seed(options.seed)
    # drawn on the CPU (the same mask on every device for a seed), ranked where the parameters are
    return GlobalRanking({n: torch.rand(p.shape, generator=g).to(p.device) for n, p in params.items()}).mask
