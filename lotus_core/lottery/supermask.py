"""Supermasks by edge-popup: train only a score per weight, never the weights.

Ramanujan, Wortsman, Kembhavi, Farhadi & Rastegari, "What's Hidden in a Randomly Weighted Neural
Network?" (CVPR 2020). Every weight of the model is frozen, either at the pre-trained values or
at a random re-initialisation of the scoped weights (``init="reinit"``, the paper's setting).
Each scoped Linear layer computes with ``W * top_k(|s|)``: the ``density`` fraction of its
entries with the largest score |s| (per layer). As in the authors' code (allenai/hidden-networks,
``GetSubnet.apply(self.scores.abs(), k)`` in ``SupermaskLinear``) the straight-through estimator
sits on |s|, so the gradient reaching a score passes through the absolute value:
``dL/ds = sign(s) * dL/d(W_eff) * W``. Scores start uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]
(the authors' ``kaiming_uniform_(scores, a=sqrt(5))``, seeded). Deliberate deviations (AdamW instead
of SGD with momentum, ``round`` instead of ``int`` for the count kept): docs/audit.md. The accuracy the final mask
reaches on the frozen weights is the supermask's result; at density 1 the model is the dense one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..context import Context
from ..core.errors import LotusError
from ..pruning.controls import reinit_
from ..core.mask import Mask
from ..pruning.ranking import num_to_prune, ranks
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.train import TrainConfig, train

WEIGHTS = {"pretrained": "the pre-trained weights, frozen", "reinit": "a random re-initialisation, frozen"}


@dataclass(frozen=True)
class SupermaskConfig:
    """Edge-popup. ``density`` is the fraction of each scoped layer's weights kept (k of the paper)."""

    revision: ClassVar[int] = 1  # 1: straight-through on |scores| and the authors' score init (enters the key)

    density: float = 0.5  # kept fraction per layer, in (0, 1]
    init: str = "pretrained"  # the frozen weights: pretrained | reinit (see WEIGHTS)
    steps: int = 100  # score-training steps
    lr: float = 1e-2  # peak AdamW learning rate of the scores (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    scope: str = "blocks"  # which weights are masked
    seed: int = 0  # score init, re-initialisation, batch order and the fixed test subset
    limit: int = 1000  # test images in the final evaluation


def top_k(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Bool mask of the ``density`` fraction of entries with the largest |score| (exact count)."""
    pruned = num_to_prune(1 - density, scores.numel()) if density < 1 else 0
    return ranks(scores.detach().abs().reshape(-1)).reshape(scores.shape) >= pruned


class _StraightThrough(torch.autograd.Function):
    """Forward: the top-k mask of ``magnitudes`` (|scores|) as floats; backward: the gradient passed
    through unchanged to the magnitudes (autograd then multiplies it by sign(scores))."""

    @staticmethod
    def forward(ctx, magnitudes: torch.Tensor, density: float) -> torch.Tensor:
        return top_k(magnitudes, density).to(magnitudes.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class EdgePopup(nn.Module):
    """Parametrization ``W -> W * top_k(|scores|)`` with trainable scores (one per weight)."""

    def __init__(self, shape: torch.Size, density: float, generator: torch.Generator):
        super().__init__()
        bound = 1.0 / math.sqrt(shape[1])  # kaiming_uniform_ with a = sqrt(5), as the authors initialise
        self.scores = nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)
        self.density = density

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * _StraightThrough.apply(self.scores.abs(), self.density)


def attach(model: nn.Module, names: list[str], density: float, seed: int = 0) -> dict[str, EdgePopup]:
    """Freeze every parameter of ``model`` and put an :class:`EdgePopup` on each weight in ``names``."""
    if not 0 < density <= 1:
        raise LotusError(f"supermask density {density} is outside (0, 1]; give the kept fraction, e.g. 0.5")
    for p in model.parameters():
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in names:
        layer = modules[name.rsplit(".", 1)[0]]
        out[name] = EdgePopup(layer.weight.shape, density, g)
        parametrize.register_parametrization(layer, "weight", out[name])
    return out


def detach(model: nn.Module, popups: dict[str, EdgePopup]) -> Mask:
    """Remove the parametrizations (the frozen weights come back) and return the scores' top-k mask."""
    modules = dict(model.named_modules())
    mask = Mask({n: top_k(p.scores, p.density) for n, p in popups.items()})
    for name in popups:
        parametrize.remove_parametrizations(modules[name.rsplit(".", 1)[0]], "weight", leave_parametrized=False)
    for p in model.parameters():
        p.requires_grad_(True)
    return mask


def run_supermask(ctx: Context, cfg: SupermaskConfig, run: Run) -> dict:
    """Experiment: train the scores, then evaluate the frozen weights under the final mask.

    Point ``final``: accuracy with its Wilson 95% interval, sparsity, and the accuracy of the
    frozen weights themselves (dense, no mask). Blob ``mask.safetensors``.
    """
    if cfg.init not in WEIGHTS:
        raise LotusError(f"unknown supermask weights {cfg.init!r}; choose one of {', '.join(WEIGHTS)}")
    if not run.has("final"):
        model = ctx.copy_model()
        names = list(scoped_parameters(model, cfg.scope))
        if cfg.init == "reinit":
            reinit_(scoped_parameters(model, cfg.scope), cfg.seed)
        frozen = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed).accuracy
        popups = attach(model, names, cfg.density, cfg.seed)
        train(model, ctx.train, TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0,
                                            seed=cfg.seed), ctx.data_config,
              on_progress=lambda p: run.progress(step=p.step, steps=p.steps, loss=p.loss), should_stop=run.stopped)
        run.check()
        mask = detach(model, popups)
        res = ctx.evaluate(mask.apply(model), limit=cfg.limit, seed=cfg.seed)
        run.blob("mask.safetensors", mask.to_bytes())
        run.point("final", {"accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n,
                            "sparsity": mask.sparsity, "frozen_dense_accuracy": frozen, "steps": cfg.steps})
    return run.get("final")


def supermask_headline(s: dict) -> Headline:
    """Headline of an edge-popup run: the mask's accuracy on the frozen weights."""
    return Headline(s["accuracy"], s["sparsity"], f"supermask at {pct(s['sparsity'])}: {pct(s['accuracy'])} "
                    f"(frozen weights alone {pct(s['frozen_dense_accuracy'])})")


register_experiment(ExperimentSpec("supermask", SupermaskConfig, run_supermask, supermask_headline, job=True))
