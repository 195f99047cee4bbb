"""GraSP: keep the weights whose removal would most reduce the gradient flow.

"Picking Winning Tickets Before Training by Preserving Gradient Flow" (Wang et al., ICLR 2020):
score S = -w * (H g), with g the loss gradient and H the Hessian on a labelled batch (the
Hessian-gradient product comes from a second backward pass through g^T stop_grad(g)). The loss
is the cross-entropy of the logits divided by a temperature T, 200 by default as in the authors'
code (alecwangcq/GraSP ``pruner/GraSP.py``, ``T=200``; ganguli-lab/Synaptic-Flow ``GraSP.temp``);
the paper does not mention it. T = 1 is the plain loss (measured on the default model: docs/audit.md). The
weights with the *highest* S are pruned (removing them reduces the gradient norm least, or
increases it), so the ranking prunes the lowest ``-S = w * Hg`` first, globally. Scored on the
pre-trained weights (``grasp``) or on a random re-initialisation (``grasp-reinit``); the mask is
applied to the pre-trained weights. Fused attention has no double backward, so the scoring copy
uses timm's plain attention (the same function). The number pruned is ``round`` where the
reference uses ``int`` (docs/audit.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import LotusError
from .calibration import CalibrationOptions, loss_on
from .controls import scoring_copy
from .ranking import GlobalRanking, MaskFn

TEMPERATURE = 200.0  # the authors' T (alecwangcq/GraSP, Synaptic-Flow)


@dataclass(frozen=True)
class GraSPOptions(CalibrationOptions):
    """GraSP's calibration batch and the temperature its logits are divided by."""

    temperature: float = TEMPERATURE  # grasp: logits / T in the loss (the authors' 200; 1: none)


def grasp_scores(model: torch.nn.Module, names: list[str], calib: torch.Tensor, labels: torch.Tensor,
                 reinit: bool = False, seed: int = 0, temperature: float = TEMPERATURE) -> dict[str, torch.Tensor]:
    """``w * (H g)`` (= -S of the paper; lowest pruned first) for each weight in ``names``, with g and H
    those of the cross-entropy of ``logits / temperature``."""
    if not temperature > 0:
        raise LotusError(f"GraSP's temperature must be positive, not {temperature}; the authors use 200")
    work, params = scoring_copy(model, names, reinit, seed)
    for mod in work.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = False
    weights = list(params.values())
    grads = torch.autograd.grad(loss_on(work, calib, labels, temperature), weights, create_graph=True)
    flow = sum((g.detach() * g).sum() for g in grads)  # g^T stop_grad(g): its gradient is H g
    hg = torch.autograd.grad(flow, weights)
    return {n: (p * h).detach() for (n, p), h in zip(params.items(), hg)}


def grasp(params, options, reinit: bool = False) -> MaskFn:
    if options.calib is None or options.labels is None or options.model is None:
        raise LotusError("grasp needs a labelled calibration batch; pass calibration images and their labels")
    return GlobalRanking(grasp_scores(options.model, list(params), options.calib, options.labels, reinit,
                                      options.seed, options.own.temperature)).mask
