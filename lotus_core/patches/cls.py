"""CLS attention: how much the CLS token attends to each patch at one block.

The score of patch ``p`` is the post-softmax attention weight from the CLS query to the key
of patch ``p`` at block ``options.block`` (default: the last), with the heads fused by their
mean, max or min. This is the selection rule of the data-lottery-ticket experiments: patches the
classifier token ignores are the ones dropped. (Caron et al., "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021, show such CLS attention maps.)
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.errors import LotusError
from .attention import attention_maps, fuse_heads, require_cls_token
from .options import PatchBatch, ScoreOptions


def cls_attention(model: nn.Module, batch: PatchBatch, options: ScoreOptions) -> torch.Tensor:
    """``(B, P)`` CLS-to-patch attention (fractions of the CLS row's attention mass)."""
    require_cls_token(model)
    maps = attention_maps(model, batch.x)
    if not -len(maps) <= options.block < len(maps):
        raise LotusError(f"block {options.block} does not exist; the model has {len(maps)} blocks "
                         f"(use 0..{len(maps) - 1}, or -1 for the last)")
    fused = fuse_heads(maps[options.block], options.fuse)  # (B, N, N)
    return fused[:, 0, batch.grid.prefix_tokens:]
