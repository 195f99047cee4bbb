"""SNIP: connection sensitivity |dL/dw * w| on one labelled calibration batch, ranked globally.

"SNIP: Single-shot Network Pruning based on Connection Sensitivity" (Lee et al., ICLR 2019),
the first pruning-at-initialisation score of Frankle et al. 2021 (survey section 4). Scored on
the pre-trained weights (``snip``) or on a random re-initialisation of the scoped weights
(``snip-reinit``, the paper's setting); the mask is then applied to the pre-trained weights.
Calibration: the same training images as Wanda, with their labels. Compared with
ganguli-lab/Synaptic-Flow's ``SNIP`` on identical inputs, and the counting convention
(``round``, the reference ``int``): docs/audit.md.
"""
from __future__ import annotations

import torch

from ..core.errors import LotusError
from .calibration import loss_on
from .controls import scoring_copy
from .ranking import GlobalRanking, MaskFn


def snip_scores(model: torch.nn.Module, names: list[str], calib: torch.Tensor, labels: torch.Tensor,
                reinit: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """|grad of the mean cross-entropy on (calib, labels) x w| for each weight in ``names``."""
    work, params = scoring_copy(model, names, reinit, seed)
    grads = torch.autograd.grad(loss_on(work, calib, labels), list(params.values()))
    return {n: (g * p).detach().abs() for (n, p), g in zip(params.items(), grads)}


def snip(params, options, reinit: bool = False) -> MaskFn:
    if options.calib is None or options.labels is None or options.model is None:
        raise LotusError("snip needs a labelled calibration batch; pass calibration images and their labels")
    return GlobalRanking(snip_scores(options.model, list(params), options.calib, options.labels, reinit,
                                     options.seed)).mask
