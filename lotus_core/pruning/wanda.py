"""Wanda: prune by |W| times the L2 norm of the layer's input activations, per output row.

"A Simple and Effective Pruning Approach for Large Language Models" (Sun et al., ICLR 2024):
score S_ij = |W_ij| * ||X_j||_2 over a calibration batch (all its tokens), compared within
each output row i. Inputs are captured with forward hooks on the scoped Linear layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import LotusError
from .ranking import MaskFn, RowRanking


@dataclass(frozen=True)
class WandaOptions:
    """Wanda's calibration."""

    calib_size: int = 128  # training images whose activations give wanda's input norms


@torch.inference_mode()
def input_norms(model, names, calib: torch.Tensor) -> dict[str, torch.Tensor]:
    """L2 norm of each input feature of the Linear layers owning ``names``, over ``calib``."""
    modules = dict(model.named_modules())
    sums, hooks = {}, []
    for name in names:
        layer = modules[name.rsplit(".", 1)[0]]

        def hook(mod, inputs, output, name=name):
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])  # (tokens, in)
            sums[name] = sums.get(name, 0) + (x * x).sum(dim=0)

        hooks.append(layer.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()(calib)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {n: s.sqrt() for n, s in sums.items()}


def wanda(params, options) -> MaskFn:
    if options.calib is None or options.model is None:
        raise LotusError("wanda needs a calibration batch; pass calibration images (default 128 training images)")
    norms = input_norms(options.model, list(params), options.calib)
    return RowRanking({n: p.detach().abs() * norms[n].to(p.device)[None, :] for n, p in params.items()}).mask
