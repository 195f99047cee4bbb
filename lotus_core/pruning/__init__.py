"""Pruning methods: one file each, one registry.

``PRUNERS`` is what the CLI choices, the dashboard's select boxes and the parametrised tests
enumerate. ``prune(model, method, sparsity)`` returns a :class:`Mask`; apply it with
``mask.apply(model)`` (a pruned copy; the model is never modified). ``masker(model, method)``
scores and ranks once and returns ``sparsity -> Mask``, which is what a sweep uses: one sort
for all its levels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..core.errors import LotusError
from .mask import Mask
from .nm import nm
from .omp import omp
from .omp_layerwise import omp_layerwise
from .random import random_like, random_prune
from .ranking import MaskFn, check_sparsity
from .scope import SCOPES, scoped_parameters
from .wanda import wanda


@dataclass(frozen=True)
class Pruner:
    """A pruning method: how it ranks weights, and what it needs."""

    name: str
    prepare: Callable[..., MaskFn]  # prepare(params, options) -> (sparsity -> Mask): scores and ranks once
    help: str
    needs_calibration: bool = False
    fixed_sparsity: bool = False  # N:M: sparsity is 1 - N/M whatever is asked


@dataclass
class PruneOptions:
    """Method-specific inputs, passed to every ``Pruner.prepare`` (each reads what it needs)."""

    seed: int = 0  # random pruning
    n: int = 2  # N of N:M
    m: int = 4  # M of N:M
    calib: torch.Tensor | None = None  # wanda: model-input batch
    model: nn.Module | None = None  # wanda: the model the batch goes through
    like: Mask | None = None  # random: copy this mask's layer-wise budget


PRUNERS: dict[str, Pruner] = {
    "omp": Pruner("omp", omp, "one-shot global magnitude"),
    "omp-layerwise": Pruner("omp-layerwise", omp_layerwise, "magnitude, same sparsity in every layer"),
    "random": Pruner("random", random_prune, "random (control)"),
    "nm": Pruner("nm", nm, "N:M semi-structured magnitude (2:4)", fixed_sparsity=True),
    "wanda": Pruner("wanda", wanda, "|W| x input-activation norm, per output row", needs_calibration=True),
}


def get_pruner(method: str) -> Pruner:
    if method not in PRUNERS:
        raise LotusError(f"unknown pruning method {method!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[method]


def masker(model: nn.Module, method: str, scope: str = "blocks", calib: torch.Tensor | None = None, seed: int = 0,
           n: int = 2, m: int = 4, like: Mask | None = None) -> MaskFn:
    """``sparsity -> Mask`` for ``method`` over the ``scope`` weights of ``model``, scored and ranked once.

    The weights are read now: prune the base model, not one that is changed afterwards.
    Arguments as in :func:`prune`.
    """
    pruner = get_pruner(method)
    params = scoped_parameters(model, scope)
    if pruner.needs_calibration and calib is None:
        raise LotusError(f"{method} needs calibration images; pass calib (the CLI and dashboard use 128 training images)")
    make = pruner.prepare(params, PruneOptions(seed=seed, n=n, m=m, calib=calib, model=model, like=like))

    def mask(sparsity: float) -> Mask:
        return make(check_sparsity(sparsity))

    return mask


def prune(model: nn.Module, method: str, sparsity: float, scope: str = "blocks", calib: torch.Tensor | None = None,
          seed: int = 0, n: int = 2, m: int = 4, like: Mask | None = None) -> Mask:
    """The keep-mask of ``method`` at ``sparsity`` (fraction pruned, in [0, 1)) over the ``scope`` weights.

    Args:
        calib: model-input batch for ``wanda`` (ignored by the others).
        seed: seed of ``random``.
        n, m: the N:M pattern of ``nm`` (its sparsity is 1 - n/m; ``sparsity`` is ignored).
        like: for ``random``, a mask whose per-layer pruned counts are copied.
    """
    get_pruner(method)
    check_sparsity(sparsity)
    return masker(model, method, scope, calib, seed, n, m, like)(sparsity)


__all__ = ["Mask", "PRUNERS", "Pruner", "prune", "masker", "get_pruner", "scoped_parameters", "SCOPES", "random_like"]
