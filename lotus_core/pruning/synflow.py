"""SynFlow: iterative, data-free pruning by synaptic flow.

"Pruning neural networks without any data by iteratively conserving synaptic flow" (Tanaka et
al., NeurIPS 2020). With every parameter replaced by its absolute value (a copy; float64), the
"synaptic flow" is R = 1^T f(1), the summed output for an all-ones input; a weight's score is
``|dR/dw * w|``, the absolute value the authors rank (ganguli-lab/Synaptic-Flow,
``Pruners/pruners.py``, ``SynFlow.score``), lowest pruned first. Scoring and pruning alternate
for ``rounds`` rounds (100 by default), the kept fraction shrinking exponentially,
``(1 - sparsity)^(r / rounds)`` after round r, so no layer collapses. For a chain of bias-free
Linear layers the score has a closed form:
``S(W_l)_ij = (1^T |W_L| ... |W_{l+1}|)_i |W_l|_ij (|W_{l-1}| ... |W_1| 1)_j``.

Scored on the pre-trained weights (``synflow``) or on a random re-initialisation
(``synflow-reinit``); the mask is applied to the pre-trained weights. Every sparsity is its
own iterative run (cached per level), so masks are not nested across sparsities. Weights pruned
in an earlier round are ranked below every kept one (score -inf), so they stay pruned. Counting
and the audit against the reference (deliberate deviations: ``round`` instead of ``int`` for the
number pruned, float64 scoring): docs/audit.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..core.errors import LotusError
from ..models.arch import data_config
from .controls import scoring_copy
from ..core.mask import Mask
from .ranking import GlobalRanking, MaskFn

ROUNDS = 100  # the paper's default number of score-prune rounds


@dataclass(frozen=True)
class SynFlowOptions:
    """SynFlow's iteration."""

    rounds: int = ROUNDS  # synflow: score-prune rounds (the paper's 100)


def linearised(model: nn.Module) -> nn.Module:
    """``model`` (a scoring copy, modified in place) in float64 with every parameter made |p|."""
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    return model


def synflow_scores(model: nn.Module, names: Sequence[str], input_shape: Sequence[int]) -> dict[str, torch.Tensor]:
    """``|dR/dw * w|`` with R = sum of ``model(ones(1, *input_shape))``, for each of ``names``.

    ``model`` is used as given (pass a :func:`linearised` copy); its gradients are not kept.
    """
    params = dict(model.named_parameters())
    weights = [params[n] for n in names]
    flow = model(torch.ones(1, *input_shape, dtype=weights[0].dtype)).sum()
    grads = torch.autograd.grad(flow, weights)
    return {n: (g * w).detach().abs() for n, g, w in zip(names, grads, weights)}


def synflow_mask(model: nn.Module, names: list[str], sparsity: float, input_shape: Sequence[int],
                 rounds: int = ROUNDS, reinit: bool = False, seed: int = 0) -> Mask:
    """The SynFlow keep-mask of ``names`` at ``sparsity`` after ``rounds`` score-prune rounds."""
    if rounds < 1:
        raise LotusError(f"SynFlow needs at least 1 round, not {rounds}; the paper uses 100")
    work, params = scoring_copy(model, names, reinit, seed)
    linearised(work)
    base = {n: p.detach().clone() for n, p in params.items()}
    keep = Mask.ones(params)
    for r in range(1, rounds + 1):
        scores = synflow_scores(work, names, input_shape)
        scores = {n: s.masked_fill(~keep[n], -math.inf) for n, s in scores.items()}  # already pruned: ranked first
        level = sparsity if r == rounds else 1 - (1 - sparsity) ** (r / rounds)
        keep = GlobalRanking(scores).mask(level)
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(base[n] * keep[n])
    return keep


def synflow(params, options, reinit: bool = False) -> MaskFn:
    if options.model is None:
        raise LotusError("synflow needs the model it prunes")
    shape = data_config(options.model)["input_size"]
    cache: dict[float, Mask] = {}

    def make(sparsity: float) -> Mask:
        if sparsity not in cache:
            cache[sparsity] = synflow_mask(options.model, list(params), sparsity, shape, options.own.rounds, reinit,
                                           options.seed)
        return Mask(cache[sparsity])

    return make
