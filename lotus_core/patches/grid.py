"""Patch grid geometry: which pixels of a model input form patch ``p``, and the prefix tokens.

Patches are numbered row-major over the grid: patch ``p`` covers grid row ``p // cols`` and
column ``p % cols``. For a timm VisionTransformer the grid is the model's own token grid
(``model.patch_embed.grid_size`` and ``patch_size``) and the transformer's sequence is
``num_prefix_tokens`` prefix tokens (the CLS token first, then any registers) followed by the
patch tokens in this same order. A model without a patch embedding (a CNN) gets a 7x7 grid of
equal cells (the default ViT's grid), so the pixel-masking scorers and selection still work
for it; only the attention scorers and token dropping need a ViT.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import LotusError

NON_VIT_GRID = 7  # cells per side for models without a patch embedding


@dataclass(frozen=True)
class PatchGrid:
    """The patch layout of a model input (sizes in pixels)."""

    rows: int  # patches per column of the grid
    cols: int  # patches per row of the grid
    patch_h: int  # patch height in pixels
    patch_w: int  # patch width in pixels
    height: int  # model-input height in pixels
    width: int  # model-input width in pixels
    prefix_tokens: int  # tokens before the patch tokens (CLS + registers); 0 without a token grid
    tokens: bool  # True when the grid is the model's own token grid (a ViT)

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def patch_of_pixel(self) -> torch.Tensor:
        """``(H, W)`` int64: the patch each pixel belongs to. Pixels beyond the last full patch
        (when the input size is not a multiple of the patch size) join the last row/column."""
        r = (torch.arange(self.height) // self.patch_h).clamp(max=self.rows - 1)
        c = (torch.arange(self.width) // self.patch_w).clamp(max=self.cols - 1)
        return r[:, None] * self.cols + c[None, :]

    def pixel_keep(self, keep: torch.Tensor) -> torch.Tensor:
        """Expand a per-patch keep mask ``(B, P)`` bool to pixels ``(B, 1, H, W)``."""
        if keep.ndim != 2 or keep.shape[1] != self.num_patches:
            raise LotusError(f"keep mask has shape {tuple(keep.shape)}; expected (images, {self.num_patches})")
        index = self.patch_of_pixel().to(keep.device).view(1, -1).expand(keep.shape[0], -1)
        return keep.gather(1, index).view(keep.shape[0], 1, self.height, self.width)

    def patch_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``(B, C, H, W)`` pixel values over channels and the pixels of each patch -> ``(B, P)``."""
        b = values.shape[0]
        flat = values.sum(dim=1).reshape(b, -1)
        index = self.patch_of_pixel().to(values.device).view(1, -1).expand(b, -1)
        return torch.zeros(b, self.num_patches, dtype=flat.dtype, device=flat.device).scatter_add_(1, index, flat)

    def pixels_per_patch(self) -> torch.Tensor:
        """``(P,)`` number of pixels in each patch (per channel)."""
        return torch.bincount(self.patch_of_pixel().flatten(), minlength=self.num_patches)

    def to_grid(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape ``(..., P)`` per-patch values to ``(..., rows, cols)``."""
        return values.reshape(*values.shape[:-1], self.rows, self.cols)


def is_vit(model: nn.Module) -> bool:
    """Whether ``model`` is a timm ViT with a token grid (patch embedding, prefix tokens, blocks)."""
    embed = getattr(model, "patch_embed", None)
    return (embed is not None and getattr(embed, "grid_size", None) is not None
            and hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks"))


def patch_grid(model: nn.Module, size: tuple[int, int]) -> PatchGrid:
    """The patch grid of ``model`` for inputs of ``size`` = (H, W) pixels."""
    h, w = int(size[0]), int(size[1])
    if is_vit(model):
        embed = model.patch_embed
        rows, cols = (int(v) for v in embed.grid_size)
        ph, pw = (int(v) for v in embed.patch_size)
        if (rows * ph, cols * pw) != (h, w) and (h // ph, w // pw) != (rows, cols):
            raise LotusError(f"input of {h}x{w} pixels does not fit the model's {rows}x{cols} grid of "
                             f"{ph}x{pw} patches; convert images with the model's data config")
        return PatchGrid(rows, cols, ph, pw, h, w, int(model.num_prefix_tokens), True)
    if h < NON_VIT_GRID or w < NON_VIT_GRID:
        raise LotusError(f"input of {h}x{w} pixels is too small for a {NON_VIT_GRID}x{NON_VIT_GRID} patch grid")
    return PatchGrid(NON_VIT_GRID, NON_VIT_GRID, h // NON_VIT_GRID, w // NON_VIT_GRID, h, w, 0, False)
