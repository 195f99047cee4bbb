"""Wanda: prune by |W| times the L2 norm of the layer's input activations, per output row.

"A Simple and Effective Pruning Approach for Large Language Models" (Sun et al., ICLR 2024):
score S_ij = |W_ij| * ||X_j||_2 over a calibration batch (all its tokens), compared within
each output row i. Inputs are captured with forward hooks on the scoped Linear layers, all from
the dense model, as the authors' ViT code does (locuslab/wanda ``image_classifiers/prune_utils.py``,
``prune_vit``). Deliberate deviation: ``round(sparsity * in)`` pruned per row where the reference
uses ``int``, one more per row at some sparsities (measured, and the only difference: docs/audit.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import LotusError
from .calibration import input_stats
from .ranking import MaskFn, RowRanking


@dataclass(frozen=True)
class WandaOptions:
    """Wanda's calibration."""

    calib_size: int = 128  # training images whose activations give wanda's input norms


def input_norms(model, names, calib: torch.Tensor) -> dict[str, torch.Tensor]:
    """L2 norm of each input feature of the Linear layers owning ``names``, over ``calib``."""
    return {n: s.sqrt() for n, s in input_stats(model, names, calib, lambda x: (x * x).sum(dim=0)).items()}


def wanda(params, options) -> MaskFn:
    if options.calib is None or options.model is None:
        raise LotusError("wanda needs a calibration batch; pass calibration images (default 128 training images)")
    norms = input_norms(options.model, list(params), options.calib)
    return RowRanking({n: p.detach().abs() * norms[n].to(p.device)[None, :] for n, p in params.items()}).mask
