"""Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020).

Per block ``l``: fuse the heads (mean, max or min) into ``A_l`` ``(N, N)``; optionally zero the
lowest ``discard_ratio`` of each row's weights (never the CLS column nor the diagonal, as in
the common implementation by J. Gildenblat, vit-explain); account for the residual stream by
``Â_l = (A_l + I)`` renormalised so each row sums to 1. The rollout is the product
``Â_L ... Â_2 Â_1`` and the score of patch ``p`` is its CLS row at the column of patch ``p``:
how much of the CLS token's final representation flows from that patch.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .attention import attention_maps, fuse_heads, require_cls_token
from .options import PatchBatch, ScoreOptions


def discard_lowest(a: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the ``floor(ratio * N)`` lowest weights of each row of ``(B, N, N)`` attention,
    never the CLS column (0) nor the diagonal (at most ``N - 2`` per row)."""
    n = a.shape[-1]
    k = min(math.floor(ratio * n), n - 2)
    if k <= 0:
        return a
    protected = torch.eye(n, dtype=torch.bool, device=a.device)
    protected[:, 0] = True
    ranked = a.masked_fill(protected, float("inf"))
    lowest = ranked.topk(k, dim=-1, largest=False).indices  # (B, N, k)
    return a.scatter(-1, lowest, 0.0)


def rollout_matrix(maps: list[torch.Tensor], fuse: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """The rollout ``Â_L ... Â_1`` ``(B, N, N)`` of per-block attention maps ``(B, heads, N, N)``."""
    joint = None
    for attn in maps:
        a = discard_lowest(fuse_heads(attn, fuse), discard_ratio)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        joint = a if joint is None else a @ joint
    return joint


def rollout(model: nn.Module, batch: PatchBatch, options: ScoreOptions) -> torch.Tensor:
    """``(B, P)`` rollout flow from each patch to the CLS token (each CLS row sums to 1 over all tokens)."""
    require_cls_token(model)
    joint = rollout_matrix(attention_maps(model, batch.x), options.fuse, options.discard_ratio)
    return joint[:, 0, batch.grid.prefix_tokens:]
