"""The tolerance rule: is an accuracy within ``eps`` of the dense model's accuracy?

One rule, one home. "The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal
et al., NeurIPS 2023) judges a pruned model by whether its accuracy stays within an absolute
tolerance ``eps`` of the dense accuracy ``d`` (1 accuracy point, ``eps = 0.01``): the essential
sparsity (:mod:`lotus_core.pruning.essential`), the sweeps' early decisions
(:mod:`lotus_core.pruning.sweep`), the Speed page's "best within eps" (:mod:`lotus_core.speed.run`)
and the Report all ask this object. Accuracies and ``eps`` are fractions in [0, 1].

Pure Python (no torch): ``python -m lotus_core essential --curve`` loads it without the model stack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_EPS = 0.01  # the one default tolerance: 1 accuracy point below dense (absolute fraction)
ROUNDING = 1e-12  # an accuracy equal to the floor up to float rounding counts as within


@dataclass(frozen=True)
class Tolerance:
    """"Is accuracy ``a`` within ``eps`` of dense ``d``?": ``a >= d - eps`` (fractions; equality up to float
    rounding counts as within)."""

    dense: float  # d: the dense model's accuracy, a fraction
    eps: float = DEFAULT_EPS  # the tolerance below it, an absolute fraction (0.01 = 1 accuracy point)

    @property
    def floor(self) -> float:
        """``d - eps``: the lowest accuracy still within tolerance."""
        return self.dense - self.eps

    def within(self, accuracy: Any) -> Any:
        """Whether ``accuracy`` (a float, or a pandas Series / NumPy array of them) is at least the floor."""
        return accuracy >= self.floor - ROUNDING

    def required_correct(self, n: int) -> int:
        """The fewest correct images out of ``n`` whose accuracy c / n is within (``n + 1`` when none is),
        computed with :meth:`within` itself so that the count and the rule never disagree."""
        c = min(n + 1, max(0, math.ceil((self.floor - ROUNDING) * n)))
        while c > 0 and self.within((c - 1) / n):
            c -= 1
        while c <= n and not self.within(c / n):
            c += 1
        return c
