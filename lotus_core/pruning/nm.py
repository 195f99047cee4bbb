"""N:M semi-structured magnitude pruning: in every group of M consecutive weights along the
input dimension, keep the N largest |w| (2:4 by default, the pattern NVIDIA sparse tensor
cores accelerate; "Accelerating Sparse Deep Neural Networks", Mishra et al., 2021).
Sparsity is fixed at 1 - N/M whatever is asked (:attr:`NMOptions.fixed_sparsity`). The rule of
locuslab/wanda's and IST-DASLab/sparsegpt's N:M code (the M - N smallest of each group go): docs/audit.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import LotusError
from ..core.mask import Mask
from .ranking import MaskFn


@dataclass(frozen=True)
class NMOptions:
    """The N:M pattern."""

    n: int = 2  # N of the N:M pattern (nm): weights kept per group
    m: int = 4  # M of the N:M pattern (nm): consecutive input weights per group

    @property
    def fixed_sparsity(self) -> float:
        """The sparsity every N:M mask has, 1 - N/M (rounded to 6 digits, as sweep grids are)."""
        return round(1 - self.n / self.m, 6)

    def __post_init__(self) -> None:  # refused when the options are made, before any run is recorded
        check_pattern(self.n, self.m)


def check_pattern(n: int, m: int) -> None:
    """Raise LotusError unless N:M is a pattern: 1 <= N < M."""
    if not (1 <= n < m):
        raise LotusError(f"N:M = {n}:{m} is not a valid pattern; need 1 <= N < M, e.g. 2:4 or 4:8")


def check_nm(params, n: int, m: int) -> None:
    check_pattern(n, m)
    for name, p in params.items():
        if p.shape[-1] % m:
            raise LotusError(f"{name} has {p.shape[-1]} inputs, not a multiple of M={m}; choose M dividing it")


def nm(params, options) -> MaskFn:
    n, m = options.own.n, options.own.m
    check_nm(params, n, m)
    out = {}
    for name, p in params.items():
        groups = p.detach().abs().reshape(-1, m)  # (out * in / M, M)
        idx = torch.argsort(groups, dim=1, descending=True, stable=True)[:, :n]
        out[name] = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True).reshape(p.shape)
    mask = Mask(out)
    return lambda sparsity: Mask(mask)
