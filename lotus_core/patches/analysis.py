"""One call for a page or the CLI: score some images, select their patches, and predict on the
original and on the lottery version of each image.

The lottery version is the pixel-masked image (dropped patches filled with the dataset mean
pixel), which every model accepts; for a timm ViT the prediction with the dropped tokens
removed (token dropping) is reported as well.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..context import Context
from ..data.images import ImageSet, to_model_input
from ..core.errors import LotusError
from ..training.evaluate import predict
from . import ScoreOptions, score_images
from .grid import PatchGrid, patch_grid
from .select import check_drop, drop_tokens, fill_value, mask_pixels, select_patches


@dataclass
class PatchReport:
    """Scores, selection and predictions for a few images (patch indices are row-major)."""

    scorer: str
    drop: float  # drop ratio in [0, 1)
    grid: PatchGrid
    images: torch.Tensor  # (B, C, H, W) uint8, as given (dataset resolution)
    model_images: torch.Tensor  # (B, C, H, W) uint8 at the model's input size and channels
    indices: list[int | None]  # test-set index of each image (None for uploads)
    labels: list[int | None]  # true label (None for uploads)
    scores: torch.Tensor  # (B, P) fp32
    keep: torch.Tensor  # (B, P) bool
    prediction: torch.Tensor  # (B,) on the original image
    prediction_lottery: torch.Tensor  # (B,) on the pixel-masked image
    prediction_token_drop: torch.Tensor | None  # (B,) with dropped tokens removed (ViTs only)

    @property
    def kept_count(self) -> int:
        """Patches kept per image (the same for every image)."""
        return int(self.keep[0].sum()) if len(self.keep) else 0

    @property
    def unchanged_lottery(self) -> int:
        """Images whose prediction on the pixel-masked lottery version equals the original's."""
        return int((self.prediction == self.prediction_lottery).sum())

    @property
    def unchanged_token_drop(self) -> int | None:
        """Images whose prediction with the dropped tokens removed equals the original's (ViTs only)."""
        if self.prediction_token_drop is None:
            return None
        return int((self.prediction == self.prediction_token_drop).sum())

    def records(self) -> list[dict]:
        """One JSON-ready dict per image."""
        out = []
        for i in range(len(self.scores)):
            out.append({
                "index": self.indices[i], "label": self.labels[i], "prediction": int(self.prediction[i]),
                "prediction_lottery": int(self.prediction_lottery[i]),
                "prediction_token_drop": (None if self.prediction_token_drop is None
                                          else int(self.prediction_token_drop[i])),
                "scores": [float(v) for v in self.scores[i]],
                "kept": self.keep[i].nonzero().flatten().tolist(),
                "dropped": (~self.keep[i]).nonzero().flatten().tolist(),
            })
        return out


def class_indices(data: ImageSet, label: int, count: int) -> list[int]:
    """The first ``count`` indices of ``data`` whose label is ``label``."""
    return (data.labels == label).nonzero().flatten()[:count].tolist()


def check_indices(ctx: Context, indices: list[int]) -> torch.Tensor:
    """``indices`` as a tensor, each inside the test split, else a LotusError naming the bad one."""
    for i in indices:
        if not 0 <= int(i) < len(ctx.test):
            raise LotusError(f"index {i} is outside the test split (0..{len(ctx.test) - 1})")
    return torch.tensor([int(i) for i in indices], dtype=torch.int64)


def to_uint8_model_size(images: torch.Tensor, data_config: dict) -> torch.Tensor:
    """uint8 images converted to the model's input size and channels (for display and re-scoring)."""
    identity = {**data_config, "mean": (0.0,) * data_config["input_size"][0], "std": (1.0,) * data_config["input_size"][0]}
    return (to_model_input(images, identity) * 255).round().clamp(0, 255).to(torch.uint8)


def explain_images(ctx: Context, scorer: str, drop: float, options: ScoreOptions = ScoreOptions(),
                   indices: list[int] | None = None, images: torch.Tensor | None = None) -> PatchReport:
    """Score, select and predict for test images ``indices`` or for uint8 ``images`` ``(B, C, H, W)`` (uploads).

    Uploaded images have no label; the random control seeds them by their position (0, 1, ...).
    """
    check_drop(drop)
    if (indices is None) == (images is None):
        raise LotusError("give test-set indices or images, not both (nor neither)")
    if indices is not None:
        if not indices:
            raise LotusError("no images chosen; give at least one test-set index")
        idx = check_indices(ctx, indices)
        images, labels, ids, where = ctx.test.images[idx], ctx.test.labels[idx].tolist(), idx, idx.tolist()
    else:
        labels, ids, where = [None] * len(images), torch.arange(len(images)), [None] * len(images)
    fill = fill_value(ctx.train, ctx.data_config)
    scores = score_images(ctx.model, images, ctx.data_config, scorer, options, fill, ids=ids)
    keep = select_patches(scores, drop)
    grid = patch_grid(ctx.model, ctx.data_config["input_size"][1:])
    prediction = predict(ctx.model, images, ctx.data_config, bf16=False)
    lottery = predict(ctx.model, images, ctx.data_config, bf16=False, batch_size=len(images),
                      transform=lambda x, start: mask_pixels(x, keep, grid, fill))
    tokens = None
    if grid.tokens:
        tokens = predict(ctx.model, images, ctx.data_config, bf16=False, batch_size=len(images),
                         forward=lambda model, x, start: drop_tokens(model, x, keep))
    return PatchReport(scorer, drop, grid, images, to_uint8_model_size(images, ctx.data_config), where, labels,
                       scores, keep, prediction, lottery, tokens)
