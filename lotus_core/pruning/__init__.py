"""Pruning methods: one file each, one registry.

``PRUNERS`` is what the CLI choices, the dashboard's select boxes and the parametrised tests
enumerate. ``prune(model, method, sparsity)`` returns a :class:`Mask`; apply it with
``mask.apply(model)`` (a pruned copy; the model is never modified). ``masker(model, method)``
scores and ranks once and returns ``sparsity -> Mask``, which is what a sweep uses: one sort
for all its levels.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from ..core.errors import LotusError
from .mask import Mask
from .grasp import grasp
from .nm import nm
from .omp import omp
from .omp_layerwise import omp_layerwise
from .random import random_like, random_prune
from .ranking import MaskFn, check_sparsity
from .scope import SCOPES, scoped_parameters
from .snip import snip
from .sparsegpt import BLOCKSIZE, DAMP, sparsegpt, sparsegpt_nm
from .synflow import ROUNDS, synflow
from .wanda import wanda


@dataclass(frozen=True)
class Pruner:
    """A pruning method: how it ranks weights, and what it needs."""

    name: str
    prepare: Callable[..., MaskFn]  # prepare(params, options) -> (sparsity -> Mask): scores and ranks once
    help: str
    needs_calibration: bool = False  # reads PruneOptions.calib (and labels) from training images
    fixed_sparsity: bool = False  # N:M: sparsity is 1 - N/M whatever is asked
    options: tuple[str, ...] = ()  # the PruneOptions fields that change its masks (part of every result key)


@dataclass
class PruneOptions:
    """Method-specific inputs, passed to every ``Pruner.prepare`` (each reads what it needs)."""

    seed: int = 0  # random pruning
    n: int = 2  # N of N:M
    m: int = 4  # M of N:M
    calib: torch.Tensor | None = None  # wanda, sparsegpt, snip, grasp: model-input batch
    labels: torch.Tensor | None = None  # snip, grasp: the batch's labels
    model: nn.Module | None = None  # the model the batch goes through (and synflow scores)
    like: Mask | None = None  # random: copy this mask's layer-wise budget
    damp: float = DAMP  # sparsegpt: fraction of the mean Hessian diagonal added to it
    blocksize: int = BLOCKSIZE  # sparsegpt: columns per lazy-update block
    rounds: int = ROUNDS  # synflow: score-prune rounds


PRUNERS: dict[str, Pruner] = {
    "omp": Pruner("omp", omp, "one-shot global magnitude"),
    "omp-layerwise": Pruner("omp-layerwise", omp_layerwise, "magnitude, same sparsity in every layer"),
    "random": Pruner("random", random_prune, "random (control)"),
    "nm": Pruner("nm", nm, "N:M semi-structured magnitude (2:4)", fixed_sparsity=True, options=("n", "m")),
    "wanda": Pruner("wanda", wanda, "|W| x input-activation norm, per output row", needs_calibration=True),
    "sparsegpt": Pruner("sparsegpt", sparsegpt, "layer-wise OBS reconstruction with weight update (SparseGPT)",
                        needs_calibration=True, options=("damp", "blocksize")),
    "sparsegpt-nm": Pruner("sparsegpt-nm", sparsegpt_nm, "SparseGPT with an N:M pattern (2:4)", needs_calibration=True,
                           fixed_sparsity=True, options=("n", "m", "damp", "blocksize")),
    "snip": Pruner("snip", snip, "|grad x w| on a labelled batch (SNIP)", needs_calibration=True),
    "snip-reinit": Pruner("snip-reinit", partial(snip, reinit=True), "SNIP scored at a random re-initialisation",
                          needs_calibration=True),
    "grasp": Pruner("grasp", grasp, "keeps gradient flow: -w x Hg (GraSP)", needs_calibration=True),
    "grasp-reinit": Pruner("grasp-reinit", partial(grasp, reinit=True), "GraSP scored at a random re-initialisation",
                           needs_calibration=True),
    "synflow": Pruner("synflow", synflow, "iterative data-free synaptic flow (SynFlow)", options=("rounds",)),
    "synflow-reinit": Pruner("synflow-reinit", partial(synflow, reinit=True),
                             "SynFlow scored at a random re-initialisation", options=("rounds",)),
}


def get_pruner(method: str) -> Pruner:
    if method not in PRUNERS:
        raise LotusError(f"unknown pruning method {method!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[method]


def prune_options(**values: Any) -> PruneOptions:
    """:class:`PruneOptions` from keyword values; an unknown name is a LotusError naming the valid ones."""
    known = {f.name for f in fields(PruneOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LotusError(f"unknown pruning option {unknown[0]!r}; valid options: {', '.join(sorted(known))}")
    return PruneOptions(**values)


def masker(model: nn.Module, method: str, scope: str = "blocks", calib: torch.Tensor | None = None, seed: int = 0,
           n: int = 2, m: int = 4, like: Mask | None = None, labels: torch.Tensor | None = None,
           **options: Any) -> MaskFn:
    """``sparsity -> Mask`` for ``method`` over the ``scope`` weights of ``model``, scored and ranked once.

    The weights are read now: prune the base model, not one that is changed afterwards.
    Arguments as in :func:`prune`.
    """
    pruner = get_pruner(method)
    params = scoped_parameters(model, scope)
    if pruner.needs_calibration and calib is None:
        raise LotusError(f"{method} needs calibration images; pass calib (the CLI and dashboard use 128 training images)")
    make = pruner.prepare(params, prune_options(seed=seed, n=n, m=m, calib=calib, labels=labels, model=model,
                                                like=like, **options))

    def mask(sparsity: float) -> Mask:
        return make(check_sparsity(sparsity))

    return mask


def prune(model: nn.Module, method: str, sparsity: float, scope: str = "blocks", calib: torch.Tensor | None = None,
          seed: int = 0, n: int = 2, m: int = 4, like: Mask | None = None, labels: torch.Tensor | None = None,
          **options: Any) -> Mask:
    """The keep-mask of ``method`` at ``sparsity`` (fraction pruned, in [0, 1)) over the ``scope`` weights.

    Args:
        calib: model-input batch for the calibrated methods (``Pruner.needs_calibration``; ignored by the others).
        labels: the labels of ``calib`` (snip, grasp).
        seed: seed of ``random`` and of the ``-reinit`` methods' re-initialisation.
        n, m: the N:M pattern of ``nm`` and ``sparsegpt-nm`` (sparsity 1 - n/m; ``sparsity`` is ignored).
        like: for ``random``, a mask whose per-layer pruned counts are copied.
        options: other :class:`PruneOptions` fields (damp, blocksize, rounds).
    """
    get_pruner(method)
    check_sparsity(sparsity)
    return masker(model, method, scope, calib, seed, n, m, like, labels, **options)(sparsity)


__all__ = ["Mask", "PRUNERS", "Pruner", "PruneOptions", "prune", "masker", "get_pruner", "prune_options",
           "scoped_parameters", "SCOPES", "random_like"]
