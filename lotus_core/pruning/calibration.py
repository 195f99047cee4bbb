"""What calibration-based pruners read from a batch: statistics of each Linear layer's inputs,
and the gradients of the loss on labelled images.

Wanda uses the per-feature sum of squares of the inputs, SparseGPT their second moment
``X^T X`` (the layer-wise Hessian of the reconstruction loss), SNIP and GraSP the loss
gradients. Inputs are captured with forward hooks on the Linear layers owning the named weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CalibrationOptions:
    """The calibration batch of a method that reads one (snip, grasp)."""

    calib_size: int = 128  # training images (with their labels) in the calibration batch


@torch.inference_mode()
def input_stats(model: nn.Module, names: Iterable[str], calib: torch.Tensor,
                stat: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sum over calib of stat(x)`` for the input ``x`` (tokens, in) of the Linear owning each of ``names``.

    Args:
        model: run once on ``calib`` in eval mode (its training flag is restored).
        names: weight names such as ``blocks.0.mlp.fc1.weight``.
        stat: maps a (tokens, in) float32 batch of inputs to the tensor that is summed.
    """
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        layer = modules[name.rsplit(".", 1)[0]]

        def hook(mod, inputs, output, name=name):
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])  # (tokens, in)
            sums[name] = sums.get(name, 0) + stat(x)

        hooks.append(layer.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()(calib)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return sums


def loss_on(model: nn.Module, calib: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy of ``model`` (eval mode) on a labelled calibration batch, the logits divided by
    ``temperature`` (GraSP's T; 1 leaves them as they are)."""
    return F.cross_entropy(model.eval()(calib).float() / temperature, labels)
