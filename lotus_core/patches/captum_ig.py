"""Integrated Gradients with captum (Sundararajan et al., "Axiomatic Attribution for Deep
Networks", ICML 2017), summed per patch.

Attributions of the predicted class's logit along the straight path from the baseline (the
dataset mean pixel, in model-input space) to the image, with ``options.ig_steps`` steps; the
score of patch ``p`` is the sum of ``|attribution|`` over its pixels and channels.
"""
from __future__ import annotations

import torch
from torch import nn

from .options import PatchBatch, ScoreOptions


def captum_ig(model: nn.Module, batch: PatchBatch, options: ScoreOptions) -> torch.Tensor:
    """``(B, P)`` summed |integrated gradients| of the predicted class's logit per patch."""
    from captum.attr import IntegratedGradients

    x = batch.x.float()
    with torch.no_grad():
        target = model(x).argmax(dim=-1)
    baseline = batch.fill.view(1, -1, 1, 1).to(x).expand_as(x).contiguous()
    attr = IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=options.ig_steps,
                                                internal_batch_size=256)
    return batch.grid.patch_sum(attr.detach().abs())
