"""Patch occlusion with captum's ``FeatureAblation`` (Zeiler & Fergus, ECCV 2014, occlusion).

The feature mask groups each patch's pixels (all channels) into one feature, so captum
replaces one whole patch at a time with the baseline (the dataset mean pixel, in model-input
space) and records the change of the predicted class's logit. The score of patch ``p`` is
``logit(x) - logit(x with p filled)``: positive when removing the patch hurts the prediction.
"""
from __future__ import annotations

import torch
from torch import nn

from .options import PatchBatch, ScoreOptions


def captum_ablation(model: nn.Module, batch: PatchBatch, options: ScoreOptions) -> torch.Tensor:
    """``(B, P)`` drop of the predicted class's logit when each patch is replaced by ``batch.fill``."""
    from captum.attr import FeatureAblation

    x, grid = batch.x.float(), batch.grid
    with torch.no_grad():
        target = model(x).argmax(dim=-1)
    mask = grid.patch_of_pixel().view(1, 1, grid.height, grid.width).expand(1, x.shape[1], -1, -1)
    baseline = batch.fill.view(1, -1, 1, 1).to(x).expand_as(x)
    with torch.no_grad():
        attr = FeatureAblation(model).attribute(x, baselines=baseline, target=target, feature_mask=mask,
                                                perturbations_per_eval=8)
    # every pixel of a patch carries the patch's value: average them back to one per patch
    return grid.patch_sum(attr) / (grid.pixels_per_patch().to(attr) * x.shape[1])
