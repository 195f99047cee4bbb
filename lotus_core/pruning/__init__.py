"""Pruning methods: one file each, one registry.

``PRUNERS`` is what the CLI choices, the dashboard's select boxes and the parametrised tests
enumerate. ``prune(model, method, sparsity)`` returns a :class:`Mask`; apply it with
``mask.apply(model)`` (a pruned copy; the model is never modified).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import LotusError
from .mask import Mask
from .nm import nm
from .omp import omp
from .omp_layerwise import omp_layerwise
from .random import random_like, random_prune
from .ranking import check_sparsity
from .scope import SCOPES, scoped_parameters
from .wanda import wanda


@dataclass(frozen=True)
class Pruner:
    name: str
    fn: Callable  # fn(params, sparsity, options) -> Mask
    help: str
    needs_calibration: bool = False
    fixed_sparsity: bool = False  # N:M: sparsity is 1 - N/M whatever is asked


@dataclass
class PruneOptions:
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


def prune(model: nn.Module, method: str, sparsity: float, scope: str = "blocks", calib: torch.Tensor | None = None,
          seed: int = 0, n: int = 2, m: int = 4, like: Mask | None = None) -> Mask:
    """The keep-mask of ``method`` at ``sparsity`` (fraction pruned) over the ``scope`` weights.

    Args:
        calib: model-input batch for ``wanda`` (ignored by the others).
        n, m: the N:M pattern of ``nm`` (its sparsity is 1 - n/m; ``sparsity`` is ignored).
        like: for ``random``, a mask whose per-layer pruned counts are copied.
    """
    pruner = get_pruner(method)
    check_sparsity(sparsity)
    params = scoped_parameters(model, scope)
    if pruner.needs_calibration and calib is None:
        raise LotusError(f"{method} needs calibration images; pass calib (the CLI and dashboard use 128 training images)")
    return pruner.fn(params, sparsity, PruneOptions(seed=seed, n=n, m=m, calib=calib, model=model, like=like))


__all__ = ["Mask", "PRUNERS", "Pruner", "prune", "get_pruner", "scoped_parameters", "SCOPES", "random_like"]
