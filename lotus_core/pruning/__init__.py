"""Pruning methods: one file each, one registry.

``PRUNERS`` is what the CLI choices, the dashboard's select boxes and the parametrised tests
enumerate. A method with options of its own declares them as a frozen dataclass beside it
(``NMOptions`` in nm.py) and names it in its registry line; the options are part of every
result key of that method, their fields become CLI flags, and an options class with a
``fixed_sparsity`` property fixes the sparsity the method reaches (N:M: 1 - N/M).

``prune(model, method, sparsity)`` returns a :class:`Mask`; apply it with ``mask.apply(model)``
(a pruned copy; the model is never modified). ``masker(model, method)``
scores and ranks once and returns ``sparsity -> Mask``, which is what a sweep uses: one sort
for all its levels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..core.config import from_mapping
from ..core.errors import LotusError
from ..core.mask import Mask
from .calibration import CalibrationOptions
from .grasp import GraSPOptions, grasp
from .nm import NMOptions, nm
from .omp import omp
from .omp_layerwise import omp_layerwise
from .random import random_like, random_prune
from .ranking import MaskFn, check_sparsity
from .scope import SCOPES, scoped_parameters
from .snip import snip
from .sparsegpt import SparseGPTNMOptions, SparseGPTOptions, sparsegpt, sparsegpt_nm
from .synflow import SynFlowOptions, synflow
from .wanda import WandaOptions, wanda


@dataclass(frozen=True)
class Pruner:
    """A pruning method: how it ranks weights, and what it needs."""

    name: str
    prepare: Callable[..., MaskFn]  # prepare(params, options) -> (sparsity -> Mask): scores and ranks once
    help: str
    needs_calibration: bool = False  # reads PruneOptions.calib (and labels) from training images
    options: type | None = None  # the method's own options, a frozen dataclass (e.g. NMOptions); None: none
    revision: int = 0  # bumped when the method's algorithm is corrected; non-zero, it enters its results' keys

    def make_options(self, values: Any = None) -> Any:
        """This method's options: ``values`` as an instance of its options class (kept as given), or a mapping of
        its fields (defaults for the others; a name it does not have is a LotusError), or None for the defaults.
        None for a method without options (giving it any is a LotusError)."""
        if self.options is None:
            if values:
                raise LotusError(f"{self.name} has no options of its own; drop {', '.join(map(repr, values))}")
            return None
        if type(values) is self.options:
            return values
        if values is not None and not isinstance(values, Mapping):
            raise LotusError(f"{self.name}'s options are a {self.options.__name__}, not a {type(values).__name__}")
        return from_mapping(self.options, values or {})

    def option_values(self, values: Any = None) -> dict:
        """The method's options (``values`` as :meth:`make_options` takes them) as a plain dict, with its
        ``revision`` when non-zero: what result keys record (empty for a method without options at revision 0,
        so those keys never changed)."""
        own = self.make_options(values)
        values = {} if own is None else dataclasses.asdict(own)
        return {**values, "revision": self.revision} if self.revision else values

    def fixed_sparsity(self, values: Any = None) -> float | None:
        """The sparsity the method reaches whatever is asked (N:M: 1 - N/M), or None when it follows the request."""
        return getattr(self.make_options(values), "fixed_sparsity", None)

    def effective_sparsity(self, requested: float, values: Any = None) -> float:
        """The sparsity a request for ``requested`` reaches with these options."""
        fixed = self.fixed_sparsity(values)
        return requested if fixed is None else fixed


@dataclass
class PruneOptions:
    """Inputs passed to every ``Pruner.prepare`` (each reads what it needs)."""

    seed: int = 0  # random pruning, and the re-initialisation the -reinit methods score
    own: Any = None  # the method's own options (an instance of Pruner.options, e.g. NMOptions)
    calib: torch.Tensor | None = None  # wanda, sparsegpt, snip, grasp: model-input batch
    labels: torch.Tensor | None = None  # snip, grasp: the batch's labels
    model: nn.Module | None = None  # the model the batch goes through (and synflow scores)
    like: Mask | None = None  # random: copy this mask's layer-wise budget


# revision 1 (docs/audit.md): synflow ranks |dR/dw * w| (it ranked the signed score), grasp divides the logits
# by a temperature (it used none); results stored under the earlier algorithms are never served for these.
PRUNERS: dict[str, Pruner] = {
    "omp": Pruner("omp", omp, "one-shot global magnitude"),
    "omp-layerwise": Pruner("omp-layerwise", omp_layerwise, "magnitude, same sparsity in every layer"),
    "random": Pruner("random", random_prune, "random (control)"),
    "nm": Pruner("nm", nm, "N:M semi-structured magnitude (2:4)", options=NMOptions),
    "wanda": Pruner("wanda", wanda, "|W| x input-activation norm, per output row", needs_calibration=True,
                    options=WandaOptions),
    "sparsegpt": Pruner("sparsegpt", sparsegpt, "layer-wise OBS reconstruction with weight update (SparseGPT)",
                        needs_calibration=True, options=SparseGPTOptions),
    "sparsegpt-nm": Pruner("sparsegpt-nm", sparsegpt_nm, "SparseGPT with an N:M pattern (2:4)", needs_calibration=True,
                           options=SparseGPTNMOptions),
    "snip": Pruner("snip", snip, "|grad x w| on a labelled batch (SNIP)", needs_calibration=True,
                   options=CalibrationOptions),
    "snip-reinit": Pruner("snip-reinit", partial(snip, reinit=True), "SNIP scored at a random re-initialisation",
                          needs_calibration=True, options=CalibrationOptions),
    "grasp": Pruner("grasp", grasp, "keeps gradient flow: -w x Hg, logits / temperature (GraSP)",
                    needs_calibration=True, options=GraSPOptions, revision=1),
    "grasp-reinit": Pruner("grasp-reinit", partial(grasp, reinit=True), "GraSP scored at a random re-initialisation",
                           needs_calibration=True, options=GraSPOptions, revision=1),
    "synflow": Pruner("synflow", synflow, "iterative data-free synaptic flow (SynFlow)", options=SynFlowOptions,
                      revision=1),
    "synflow-reinit": Pruner("synflow-reinit", partial(synflow, reinit=True),
                             "SynFlow scored at a random re-initialisation", options=SynFlowOptions, revision=1),
}


def get_pruner(method: str) -> Pruner:
    if method not in PRUNERS:
        raise LotusError(f"unknown pruning method {method!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[method]


def masker(model: nn.Module, method: str, scope: str = "blocks", calib: torch.Tensor | None = None, seed: int = 0,
           like: Mask | None = None, labels: torch.Tensor | None = None, own: Any = None, **options: Any) -> MaskFn:
    """``sparsity -> Mask`` for ``method`` over the ``scope`` weights of ``model``, scored and ranked once.

    The weights are read now: prune the base model, not one that is changed afterwards.
    Arguments as in :func:`prune`; ``own`` is the method's options as one instance of its options class
    (a sweep's ``method_options``), passed to it as they are, in place of the keyword ``options``.
    """
    pruner = get_pruner(method)
    if own is not None and options:
        raise LotusError(f"give {method}'s options either as one {type(own).__name__} or as keywords, not both")
    params = scoped_parameters(model, scope)
    if pruner.needs_calibration and calib is None:
        raise LotusError(f"{method} needs calibration images; pass calib (the CLI and dashboard use 128 training images)")
    make = pruner.prepare(params, PruneOptions(seed=seed, own=pruner.make_options(own if own is not None else options), calib=calib,
                                               labels=labels, model=model, like=like))

    def mask(sparsity: float) -> Mask:
        return make(check_sparsity(sparsity))

    return mask


def prune(model: nn.Module, method: str, sparsity: float, scope: str = "blocks", calib: torch.Tensor | None = None,
          seed: int = 0, like: Mask | None = None, labels: torch.Tensor | None = None, **options: Any) -> Mask:
    """The keep-mask of ``method`` at ``sparsity`` (fraction pruned, in [0, 1)) over the ``scope`` weights.

    Args:
        calib: model-input batch for the calibrated methods (``Pruner.needs_calibration``; ignored by the others).
        seed: seed of ``random`` and of the ``-reinit`` methods' re-initialisation.
        like: for ``random``, a mask whose per-layer pruned counts are copied.
        labels: the labels of ``calib`` (snip, grasp).
        options: the method's own options by field name (``nm``: ``n``, ``m``; its sparsity is then
            1 - n/m and ``sparsity`` is ignored; ``sparsegpt``: ``damp``, ``blocksize``; ``synflow``:
            ``rounds``; ``grasp``: ``temperature``); a name the method does not have is a LotusError.
    """
    get_pruner(method)
    check_sparsity(sparsity)
    return masker(model, method, scope, calib, seed, like, labels, **options)(sparsity)


__all__ = ["Mask", "PRUNERS", "Pruner", "PruneOptions", "prune", "masker", "get_pruner", "scoped_parameters", "SCOPES",
           "random_like"]
