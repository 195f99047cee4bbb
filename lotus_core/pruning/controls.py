"""The sanity checks of any mask: does its topology matter, or only its per-layer budget?

- ``shuffle``: the kept positions redrawn uniformly within each tensor (exactly the same number
  kept in every layer, the topology destroyed): the layer-wise shuffling of Frankle et al.,
  "Pruning Neural Networks at Initialization: Why Are We Missing the Mark?" (ICLR 2021) and
  Su et al., "Sanity-Checking Pruning Methods: Random Tickets can Win the Jackpot" (NeurIPS 2020).
- ``reinit``: the same mask on *re-initialised* weights, each masked tensor redrawn from timm's
  ViT Linear initialisation (truncated normal, std 0.02): the random-reinitialisation control
  of Frankle & Carbin, "The Lottery Ticket Hypothesis" (ICLR 2019).

Used by the LTH controls (:mod:`lotus_core.lottery.controls`) and by the sweep, which draws
any method's curve beside its controls (``SweepConfig.controls``).
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch

from ..core.errors import LotusError
from ..core.mask import Mask
from .random import random_like

CONTROLS: dict[str, str] = {
    "reinit": "the same mask on randomly re-initialised weights",
    "shuffle": "the mask shuffled within each layer (same per-layer count)",
}

REINIT_STD = 0.02  # timm's ViT Linear initialisation: truncated normal with this std


def check_control(control: str) -> str:
    if control not in CONTROLS:
        raise LotusError(f"unknown control {control!r}; choose one of {', '.join(CONTROLS)}")
    return control


def shuffled(mask: Mask, seed: int = 0) -> Mask:
    """``mask`` with its kept positions shuffled uniformly within each tensor (counts per layer kept)."""
    return random_like(mask, seed=seed)


@torch.no_grad()
def reinit_(params: Mapping[str, torch.Tensor], seed: int = 0) -> None:
    """Redraw every tensor of ``params`` in place from timm's ViT Linear init (in the mapping's order, seeded)."""
    g = torch.Generator().manual_seed(seed)
    for p in params.values():
        torch.nn.init.trunc_normal_(p, std=REINIT_STD, generator=g)


def scoring_copy(model: torch.nn.Module, names: list[str], reinit: bool = False,
                 seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.nn.Parameter]]:
    """A deep copy of ``model`` in eval mode to score weights on, and its parameters ``names``.

    With ``reinit`` the named tensors are re-initialised first (:func:`reinit_`): the scores of a
    pruning-at-initialisation method are then those of a random initialisation, as in its paper.
    """
    work = copy.deepcopy(model).eval()
    params = {n: p for n, p in work.named_parameters() if n in set(names)}
    if reinit:
        reinit_(params, seed)
    return work, params
