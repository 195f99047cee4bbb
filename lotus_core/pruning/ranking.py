"""Turning scores into masks: rank once, threshold at any sparsity.

Every method scores the weights, ranks the scores once (one stable sort: over all scoped
weights together, per tensor, or per output row) and then thresholds the ranks at each
requested sparsity. Ranks and masks live on the scores' device (the parameters'). Masks of one ranking are therefore nested across sparsities, and a sweep
sorts once instead of once per level. ``k = round(sparsity * n)`` entries are pruned, the
rule of ``torch.nn.utils.prune`` (``_compute_nparams_toprune``). Equal scores are pruned in
flat order (earlier entries first); ``torch.nn.utils.prune`` leaves that order to ``torch.topk``,
so the two agree whenever the k-th smallest score is unique (always, for trained weights).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from ..core.errors import LotusError
from ..core.mask import Mask

MaskFn = Callable[[float], Mask]  # sparsity (fraction pruned) -> keep-mask


def check_sparsity(sparsity: float) -> float:
    if not 0.0 <= float(sparsity) < 1.0:
        raise LotusError(f"sparsity {sparsity} is outside [0, 1); give a fraction such as 0.5")
    return float(sparsity)


def num_to_prune(sparsity: float, n: int) -> int:
    """Entries pruned out of ``n`` at ``sparsity`` (round half to even, as torch.nn.utils.prune)."""
    return round(check_sparsity(sparsity) * n)


def ranks(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Rank of each entry along ``dim`` (0 = lowest score; ties by position), as int32 on ``scores``' device."""
    order = torch.argsort(scores, dim=dim, stable=True)
    positions = torch.arange(scores.shape[dim], dtype=torch.int32, device=scores.device)
    positions = positions.reshape([-1 if d == dim % scores.dim() else 1 for d in range(scores.dim())])
    return torch.empty(scores.shape, dtype=torch.int32, device=scores.device).scatter_(dim, order,
                                                                                       positions.expand(scores.shape))


class GlobalRanking:
    """All entries of several tensors ranked together (lowest score pruned first)."""

    def __init__(self, scores: Mapping[str, torch.Tensor]):
        self.shapes = {n: s.shape for n, s in scores.items()}
        self.sizes = [s.numel() for s in scores.values()]
        self.rank = ranks(torch.cat([s.detach().reshape(-1).float() for s in scores.values()]))  # (total,)

    def mask(self, sparsity: float) -> Mask:
        keep = self.rank >= num_to_prune(sparsity, len(self.rank))
        return Mask({n: part.reshape(shape) for (n, shape), part
                     in zip(self.shapes.items(), torch.split(keep, self.sizes))})


class LayerRanking:
    """Entries ranked within each tensor: the same sparsity in every tensor."""

    def __init__(self, scores: Mapping[str, torch.Tensor]):
        self.rank = {n: ranks(s.detach().reshape(-1).float()).reshape(s.shape) for n, s in scores.items()}

    def mask(self, sparsity: float) -> Mask:
        return Mask({n: r >= num_to_prune(sparsity, r.numel()) for n, r in self.rank.items()})


class RowRanking:
    """Entries ranked within each output row of 2-D tensors (out, in): the same sparsity in every row."""

    def __init__(self, scores: Mapping[str, torch.Tensor]):
        self.rank = {n: ranks(s.detach().float(), dim=1) for n, s in scores.items()}  # (out, in)

    def mask(self, sparsity: float) -> Mask:
        return Mask({n: r >= num_to_prune(sparsity, r.shape[1]) for n, r in self.rank.items()})

