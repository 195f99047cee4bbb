"""Patch scorers: one file each, one registry.

``SCORERS`` is what the CLI choices, the dashboard's select boxes and the parametrised tests
enumerate. Every scorer maps a batch of model inputs to one score per patch, ``(B, P)`` float,
higher = more important, patches in row-major order of the grid (see :mod:`.grid`):

- ``cls``: CLS-to-patch attention at one block (:mod:`.cls`)
- ``rollout``: attention rollout, Abnar & Zuidema 2020 (:mod:`.rollout`)
- ``captum-ablation``: patch occlusion with captum's FeatureAblation (:mod:`.captum_ablation`)
- ``captum-ig``: captum's Integrated Gradients, |attribution| per patch (:mod:`.captum_ig`)
- ``random``: the seeded control (:mod:`.random`)

Select and apply the top patches with :mod:`.select`; compare scorers with :mod:`.fidelity`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..data.images import to_model_input
from ..core.device import model_device
from ..core.errors import LotusError
from .captum_ablation import captum_ablation
from .captum_ig import captum_ig
from .cls import cls_attention
from .grid import PatchGrid, patch_grid
from .options import FUSES, PatchBatch, PatchScoring, ScoreOptions
from .random import random_scores
from .rollout import rollout
from .select import drop_count, drop_tokens, fill_value, mask_pixels, select_patches


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[[nn.Module, PatchBatch, ScoreOptions], torch.Tensor]
    help: str
    attention: bool = False  # reads attention maps (needs a ViT with a CLS token)


SCORERS: dict[str, Scorer] = {
    "cls": Scorer("cls", cls_attention, "CLS-token attention at one block", attention=True),
    "rollout": Scorer("rollout", rollout, "attention rollout through all blocks", attention=True),
    "captum-ablation": Scorer("captum-ablation", captum_ablation, "logit drop when the patch is occluded (captum)"),
    "captum-ig": Scorer("captum-ig", captum_ig, "integrated gradients per patch (captum)"),
    "random": Scorer("random", random_scores, "random scores (control)"),
}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise LotusError(f"unknown patch scorer {name!r}; choose one of {', '.join(SCORERS)}")
    return SCORERS[name]


def score_patches(model: nn.Module, x: torch.Tensor, scorer: str, options: ScoreOptions = ScoreOptions(),
                  fill: torch.Tensor | None = None, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Scores ``(B, P)`` fp32 of the patches of model inputs ``x`` ``(B, C, H, W)``.

    Args:
        model: any timm model in eval mode (attention scorers need a ViT with a CLS token); not modified.
        x: normalised model input.
        scorer: a key of :data:`SCORERS`.
        fill: ``(C,)`` the removed-patch baseline in model-input space (default zeros); see
            :func:`~lotus_core.patches.select.fill_value` for the dataset mean.
        ids: ``(B,)`` image ids (dataset indices) seeding the random control (default 0..B-1).
    """
    spec = get_scorer(scorer)
    options.check()
    grid = patch_grid(model, x.shape[-2:])
    device = model_device(model)  # the input and the fill go where the model is (it is never moved)
    x = x.to(device)
    fill = torch.zeros(x.shape[1], device=device) if fill is None else fill.to(device)
    ids = torch.arange(x.shape[0]) if ids is None else ids
    was_training = model.training
    model.eval()
    try:
        scores = spec.fn(model, PatchBatch(x, grid, fill, ids), options).detach().float().cpu()
    finally:
        model.train(was_training)
    return scores


def score_images(model: nn.Module, images: torch.Tensor, data_config: dict, scorer: str,
                 options: ScoreOptions = ScoreOptions(), fill: torch.Tensor | None = None,
                 ids: torch.Tensor | None = None, batch_size: int = 250,
                 on_batch: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """:func:`score_patches` over uint8 ``images`` ``(N, C, H, W)`` in batches -> ``(N, P)``.

    ``on_batch(done, total)`` is called after each batch (progress).
    """
    ids = torch.arange(len(images)) if ids is None else ids
    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start: start + batch_size], data_config)
        out.append(score_patches(model, x, scorer, options, fill, ids[start: start + batch_size]))
        if on_batch is not None:
            on_batch(min(start + batch_size, len(images)), len(images))
    if not out:
        grid = patch_grid(model, data_config["input_size"][1:])
        return torch.empty(0, grid.num_patches)
    return torch.cat(out)


__all__ = ["SCORERS", "Scorer", "FUSES", "PatchGrid", "PatchScoring", "ScoreOptions", "get_scorer", "patch_grid", "score_patches",
           "score_images", "select_patches", "drop_count", "mask_pixels", "drop_tokens", "fill_value"]
