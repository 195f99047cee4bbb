"""Pieces shared by LTH and ISSP: global magnitude masks within a mask, weights as blobs."""
from __future__ import annotations

import torch
from torch import nn

from ..pruning.mask import Mask
from ..pruning.ranking import GlobalRanking
from ..pruning.scope import scoped_parameters


def magnitude_mask(model: nn.Module, sparsity: float, scope: str = "blocks", within: Mask | None = None) -> Mask:
    """Global magnitude mask at ``sparsity``.

    With ``within``, entries it prunes score -1 (below every |w|), so they stay pruned and the
    remaining budget goes to the smallest surviving weights: the IMP step "prune a fraction
    of what is left".
    """
    params = scoped_parameters(model, scope)
    scores = {n: p.detach().abs().float() for n, p in params.items()}
    if within is not None:
        scores = {n: torch.where(within[n], s, torch.full_like(s, -1.0)) for n, s in scores.items()}
    return GlobalRanking(scores).mask(sparsity)


def schedule(target: float, per_round: float) -> list[float]:
    """Sparsities after each round when ``per_round`` of the remaining weights go each time, ending at ``target``."""
    out, density = [], 1.0
    while not out or out[-1] < target - 1e-12:
        density *= 1 - per_round
        out.append(min(round(1 - density, 6), target))
    return out


def state_bytes(model: nn.Module) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})


def load_state_bytes(model: nn.Module, data: bytes) -> nn.Module:
    from safetensors.torch import load

    model.load_state_dict(load(data))
    return model
