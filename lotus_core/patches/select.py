"""Selecting patches by score and applying the selection: pixel masking and token dropping.

Rounding rule (documented and tested): with drop ratio ``d`` in [0, 1) and ``P`` patches,
``dropped = floor(d * P + 0.5)`` (round half up), capped at ``P - 1`` so at least one patch
is kept. On the default 7x7 grid, d = 0.10 drops 5 of 49 patches (4.9 rounds to 5), d = 0.25
drops 12 (12.25), d = 0.5 drops 25 (24.5 rounds up), d = 0 drops none.

Each image keeps its ``P - dropped`` highest-scoring patches; ties are broken by patch index
(the lower index ranks higher, so among equal scores the highest indices are dropped first).

Pixel masking replaces a dropped patch's pixels with the dataset mean pixel (in model-input
space, i.e. normalised) and works for any model. Token dropping removes the dropped patch
tokens after the patch embedding and position embedding, so a timm ViT's blocks really run
on ``prefix + P - dropped`` tokens (the cost the data-lottery-ticket idea saves).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data.images import ImageSet, to_model_input
from ..core.errors import LotusError
from .grid import PatchGrid, is_vit


def check_drop(drop: float) -> float:
    """``drop`` as a float in [0, 1), else a LotusError."""
    if not isinstance(drop, (int, float)) or not 0.0 <= float(drop) < 1.0:
        raise LotusError(f"drop ratio {drop} is outside [0, 1); give a fraction such as 0.1 (not a percentage)")
    return float(drop)


def drop_count(num_patches: int, drop: float) -> int:
    """Number of patches dropped at ratio ``drop``: round half up of ``drop * num_patches``, at most ``P - 1``."""
    drop = check_drop(drop)
    return min(math.floor(drop * num_patches + 0.5 + 1e-9), num_patches - 1)


def patch_ranks(scores: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` int64 rank of each patch within its image: 0 = highest score.

    Ties go to the lower patch index (a stable descending sort), so ranks are a permutation.
    """
    if scores.ndim != 2:
        raise LotusError(f"scores have shape {tuple(scores.shape)}; expected (images, patches)")
    if not torch.isfinite(scores).all():
        raise LotusError("patch scores contain NaN or infinity; check the model and the scorer's options")
    order = torch.sort(scores.float(), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    return ranks.scatter_(1, order, torch.arange(scores.shape[1], device=order.device).expand_as(order).contiguous())


def select_patches(scores: torch.Tensor, drop: float) -> torch.Tensor:
    """Keep mask ``(B, P)`` bool: each row keeps its ``P - drop_count(P, drop)`` highest-ranked patches."""
    return patch_ranks(scores) < scores.shape[1] - drop_count(scores.shape[1], drop)


def fill_value(data: ImageSet, data_config: dict) -> torch.Tensor:
    """``(C,)`` the dataset's mean pixel in model-input space (channels adapted, normalised)."""
    mean = data.mean_pixel() * 255.0  # (C_data,) on the uint8 scale that to_model_input expects
    c, _, _ = data_config["input_size"]
    one_pixel = {**data_config, "input_size": (c, 1, 1)}
    return to_model_input(mean.view(1, -1, 1, 1), one_pixel).view(-1)


def mask_pixels(x: torch.Tensor, keep: torch.Tensor, grid: PatchGrid, fill: torch.Tensor) -> torch.Tensor:
    """Model input ``x`` ``(B, C, H, W)`` with the pixels of dropped patches set to ``fill`` ``(C,)``."""
    kept = grid.pixel_keep(keep.to(x.device))  # (B, 1, H, W)
    return torch.where(kept, x, fill.to(x).view(1, -1, 1, 1))


def kept_indices(keep: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` the kept patch indices of each row, ascending; every row must keep the same number."""
    counts = keep.sum(dim=1)
    if len(counts) and not bool((counts == counts[0]).all()):
        raise LotusError("token dropping needs the same number of kept patches in every image")
    k = int(counts[0]) if len(counts) else 0
    return torch.sort(keep.float(), dim=1, descending=True, stable=True).indices[:, :k].sort(dim=1).values


def drop_tokens(model: nn.Module, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Logits of a timm ViT that computes on the kept patch tokens only.

    Runs the model's own submodules: ``patch_embed`` and ``_pos_embed`` (so every kept token
    carries its own position embedding and the prefix tokens theirs), then gathers the prefix
    tokens and the kept patch tokens, then ``patch_drop``, ``norm_pre``, the blocks, ``norm``
    and ``forward_head``. With nothing dropped this is exactly ``model(x)``.
    """
    if not is_vit(model) or not hasattr(model, "_pos_embed") or not hasattr(model, "forward_head"):
        raise LotusError(f"token dropping needs a timm VisionTransformer; {type(model).__name__} is not one "
                         "(use pixel masking)")
    prefix = model.num_prefix_tokens
    tokens = model._pos_embed(model.patch_embed(x))  # (B, prefix + P, D)
    idx = kept_indices(keep.to(tokens.device)) + prefix  # (B, K) positions in the sequence
    patches = tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))  # (B, K, D)
    tokens = torch.cat([tokens[:, :prefix], patches], dim=1)  # (B, prefix + K, D)
    tokens = model.norm_pre(model.patch_drop(tokens))
    return model.forward_head(model.norm(model.blocks(tokens)))
