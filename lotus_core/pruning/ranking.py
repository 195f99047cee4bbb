"""Turning scores into masks: rank once, threshold at any sparsity.

Ranks are computed with one stable sort, so masks at several sparsities come from the same
ranking (nested by construction) and a sweep sorts once instead of once per level.
``k = round(sparsity * n)`` entries are pruned, the rule of
``torch.nn.utils.prune`` (``_compute_nparams_toprune``).
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import LotusError
from .mask import Mask


def check_sparsity(sparsity: float) -> float:
    if not 0.0 <= float(sparsity) < 1.0:
        raise LotusError(f"sparsity {sparsity} is outside [0, 1); give a fraction such as 0.5")
    return float(sparsity)


def num_to_prune(sparsity: float, n: int) -> int:
    """Entries pruned out of ``n`` at ``sparsity`` (round half to even, as torch.nn.utils.prune)."""
    return round(check_sparsity(sparsity) * n)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank of each entry of a 1-D score vector (0 = lowest score; ties by position)."""
    order = torch.argsort(scores, stable=True)
    out = torch.empty_like(order)
    out[order] = torch.arange(len(order))
    return out


class GlobalRanking:
    """Global ranking of all entries of several tensors (lowest score pruned first)."""

    def __init__(self, scores: Mapping[str, torch.Tensor]):
        self.shapes = {n: s.shape for n, s in scores.items()}
        self.sizes = [s.numel() for s in scores.values()]
        flat = torch.cat([s.detach().reshape(-1).float() for s in scores.values()])
        self.rank = ranks(flat)

    def mask(self, sparsity: float) -> Mask:
        k = num_to_prune(sparsity, len(self.rank))
        keep = self.rank >= k
        return Mask({n: part.reshape(shape) for (n, shape), part
                     in zip(self.shapes.items(), torch.split(keep, self.sizes))})


def rowwise_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask pruning the ``round(sparsity * in)`` lowest scores of every row of a 2-D tensor."""
    k = num_to_prune(sparsity, scores.shape[1])
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k:
        idx = torch.argsort(scores, dim=1, stable=True)[:, :k]
        keep.scatter_(1, idx, False)
    return keep


def layerwise_mask(scores: Mapping[str, torch.Tensor], sparsity: float) -> Mask:
    """The same sparsity in every tensor, lowest scores pruned first."""
    out = {}
    for n, s in scores.items():
        r = ranks(s.detach().reshape(-1).float())
        out[n] = (r >= num_to_prune(sparsity, r.numel())).reshape(s.shape)
    return Mask(out)
