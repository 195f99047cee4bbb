"""The essential-sparsity turning point: the rule, the tolerance test and the bisection search.

"The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal et al., NeurIPS
2023): with dense accuracy A and tolerance eps (absolute, default 1 point: ``DEFAULT_EPS``), the
essential sparsity is the highest evaluated sparsity before the first one whose accuracy
falls below A - eps.

The search only ever needs one decision per sparsity: is the accuracy within tolerance
(at least A - eps)? :func:`bisect_turning_point` makes about log2(grid size) + 1 of them on the
fine grid; :meth:`~lotus_core.core.tolerance.Tolerance.required_correct` turns the tolerance (the rule of
:mod:`lotus_core.core.tolerance`) into a number of correct images, which
lets an evaluation stop as soon as the decision is certain
(:func:`lotus_core.training.evaluate.decide`). :func:`scouted_turning_point` finds the same bracket
while deciding most points from a budget of the dense model's hardest images, and only the
answer's low end from all the images it needs.

Pure Python without torch, so ``python -m lotus_core essential --curve`` starts at once;
:mod:`lotus_core.pruning.sweep` locates the point on a model with these functions.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..core.text import count_text
from ..core.tolerance import DEFAULT_EPS, ROUNDING, Tolerance

@dataclass
class Essential:
    """The turning point of one curve."""

    essential_sparsity: float  # highest sparsity before the first drop below A - eps
    bracket: tuple[float, float | None]  # [last within tolerance, first below] (None: never below)
    monotone: bool  # accuracy never rises as sparsity grows (over fully evaluated points) and never recovers
    recovers: bool  # some sparsity past the first drop is back within tolerance (the rule ignores it)
    evaluations: int  # points on the curve (dense excluded)

    def to_dict(self) -> dict:
        return {"essential_sparsity": self.essential_sparsity, "bracket": list(self.bracket),
                "monotone": self.monotone, "recovers": self.recovers, "evaluations": self.evaluations}


def _curve(points: Any) -> list[tuple[float, float, float]]:
    """Sorted (sparsity, low, high) of the points past dense; low = high = accuracy for a fully
    evaluated point, and [low, high] the bounds of the full-subset accuracy for one decided early."""
    if hasattr(points, "columns"):  # a DataFrame
        acc = points["accuracy"]
        low = points["acc_low"].fillna(acc) if "acc_low" in points.columns else acc
        high = points["acc_high"].fillna(acc) if "acc_high" in points.columns else acc
        rows: Iterable = zip(points["sparsity"], low, high)
    else:
        rows = (p if len(p) == 3 else (p[0], p[1], p[1]) for p in points)
    return sorted((float(s), float(lo), float(hi)) for s, lo, hi in rows if float(s) > 0)


def essential_sparsity(points: Any, dense_accuracy: float, eps: float = DEFAULT_EPS) -> Essential:
    """The essential-sparsity turning point of a curve.

    Args:
        points: a DataFrame with columns sparsity, accuracy (and optionally acc_low, acc_high:
            the bounds of points decided early, whose accuracy is NaN), or (sparsity, accuracy)
            pairs, or (sparsity, low, high) triples. Points at sparsity 0 count as dense.
        dense_accuracy: A, and ``eps`` the tolerance; absolute fractions.
    """
    curve = _curve(points)
    rule = Tolerance(dense_accuracy, eps)
    lo, hi = 0.0, None
    for s, low, _ in curve:  # a decided point's bounds lie on one side of the floor: low tells which
        if not rule.within(low):
            hi = s
            break
        lo = s
    recovers = hi is not None and any(s > hi and rule.within(low) for s, low, _ in curve)
    accs = [low for _, low, high in curve if low == high]
    monotone = all(b <= a + ROUNDING for a, b in zip(accs, accs[1:])) and not recovers
    return Essential(lo, (lo, hi), monotone, recovers, len(curve))


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def interval_half_width(accuracy: float, n: int) -> float:
    """Half the width of the 95% interval of an accuracy measured on ``n`` images (normal approximation,
    1.96 * sqrt(p (1 - p) / n); fractions): about 0.014 at 90% on 2,000 images, 0.031 on 360."""
    p = min(max(accuracy, 0.0), 1.0)
    return Z95 * math.sqrt(p * (1 - p) / n)


NOISE_RATIO = 2.0  # warn when the 95% interval's half-width exceeds this many tolerances (see noise_warning)


def noise_warning(dense_accuracy: float, n: int, eps: float) -> str | None:
    """A one-line warning when the test set is too small for the tolerance ``eps``: the 95% interval of the
    dense accuracy on ``n`` images is more than :data:`NOISE_RATIO` times ``eps`` wide (each side), so the
    turning point moves with which images were drawn, not only with pruning. None otherwise.

    Why twice and not once: a pruned model is measured on the same images as the dense one, and such a paired
    difference varies much less than either accuracy alone (only the images the two models disagree on
    count), so 2,000 images (±1.3 points at 90%) judge a 1-point tolerance; 360 images (±3.1) do not."""
    half = interval_half_width(dense_accuracy, n)
    if half <= NOISE_RATIO * eps + ROUNDING:
        return None
    least = math.ceil(1000 * half / NOISE_RATIO) / 1000  # the smallest tolerance this test set can judge
    return (f"Only {n:,} test images: an accuracy's 95% interval is about ±{half:.3f} (±{100 * half:.1f} points), "
            f"more than twice the tolerance eps = {eps:g} ({count_text(round(100 * eps, 6), 'point')}), so this turning point is within "
            f"noise; use more test images or an eps of at least {least:g} ({count_text(round(100 * least, 6), 'point')}).")


def resolution_grid(stop: float, resolution: float) -> tuple[float, ...]:
    """The sparsities resolution, 2 * resolution, ... up to ``stop`` (``stop`` itself included)."""
    count = int(stop / resolution + 1e-9)
    return tuple(sorted({round(i * resolution, 6) for i in range(1, count + 1)} | {round(stop, 6)}))


def bisect_turning_point(grid: Sequence[float], within: Callable[[float], bool],
                         split: float = 0.5) -> tuple[float, float | None]:
    """The bracket [last within tolerance, first below] on ``grid`` by bisection.

    ``grid`` holds ascending sparsities above 0 (dense, at 0, is within by definition) and
    ``within(s)`` decides one of them. The last point is asked first (if it is within, the curve
    never drops: ``(grid[-1], None)``), then the bracket is cut at ``split`` of its width from
    its low end (0.5: halved, 1 + ceil(log2(len(grid))) decisions in all, 8 for the 90 points of a
    0.01 grid up to 0.9; see :func:`cost_split` for when the two answers cost differently). On a
    curve that stays below once it drops this is the bracket of the full grid, whatever the
    split; the caller checks that assumption.
    """
    if within(grid[-1]):
        return grid[-1], None
    lo, hi = -1, len(grid) - 1  # indices; -1 is dense
    while hi - lo > 1:
        mid = lo + _cut(hi - lo, split)
        if within(grid[mid]):
            lo = mid
        else:
            hi = mid
    return (grid[lo] if lo >= 0 else 0.0), grid[hi]


def scouted_turning_point(grid: Sequence[float], ask: Callable[[float, int | None], bool | None],
                          budgets: Sequence[int], split: float = 0.5) -> tuple[float, float | None]:
    """The bracket :func:`bisect_turning_point` finds with exact decisions, found mostly with cheap ones.

    ``ask(s, budget)`` decides sparsity ``s`` from at most ``budget`` images (None: as many as it takes),
    True (within) or False (below) when certain, None when that budget left it open; asking again with a
    larger budget goes on where the last one stopped. With the dense model's hardest images first, "below"
    is certain after a few hundred images while "within" takes nearly all of them, so an open answer
    means "probably within" and a False is never a guess.

    The bisection runs on these scouting answers (open counts as within), then only the bracket's low end
    is decided exactly. When it is within, the bracket is the exact one: its high end is a certain
    "below". When it is below, the scouts were too optimistic there: the search goes on below it with
    the next, larger budget of ``budgets`` (ascending; the last is used from then on). On a curve that
    stays below once it drops the answer is therefore exactly :func:`bisect_turning_point`'s, whatever
    the scouts say; they only decide how many images it takes.
    """
    level = 0

    def scout(s: float) -> bool:
        return ask(s, budgets[level]) is not False

    top = len(grid)  # the search's grid is grid[:top]; its last point is certainly below once a scout erred
    while True:
        lo, hi = bisect_turning_point(grid[:top], scout, split)
        if hi is None:  # the end of the range looked within (only while top is the whole grid)
            if ask(grid[-1], None):
                return lo, None
        elif lo == 0.0 or ask(lo, None):  # 0.0: dense, within by definition
            return lo, hi
        else:
            top = grid.index(lo) + 1
        level = min(level + 1, len(budgets) - 1)  # a scout erred: look further from now on


def scout_budgets(n: int, required: int, smallest: int) -> tuple[int, ...]:
    """The image budgets of :func:`scouted_turning_point` for ``required`` of ``n``: first twice the
    ``n - required + 1`` wrong images a "below" needs (at least ``smallest``), then doubled up to ``n``."""
    budgets = [min(n, max(smallest, 2 * (n - required + 1)))]
    while budgets[-1] < n:
        budgets.append(min(n, 2 * budgets[-1]))
    return tuple(budgets)


def _cut(width: int, split: float) -> int:
    """Offset of the probe inside a bracket ``width`` indices wide (> 1): strictly inside it."""
    return max(1, min(width - 1, math.floor(width * split)))


def bisect_decisions(count: int, split: float = 0.5) -> int:
    """The most decisions :func:`bisect_turning_point` asks on a grid of ``count`` points (its worst case)."""
    @functools.lru_cache(maxsize=None)
    def worst(width: int) -> int:
        if width <= 1:
            return 0
        cut = _cut(width, split)
        return 1 + max(worst(cut), worst(width - cut))

    return 1 + worst(count)


def cost_split(above: float, below: float) -> float:
    """Where to cut a bracket when deciding a point "within tolerance" costs ``above`` and "below" costs
    ``below`` (any unit; e.g. images evaluated): the fraction x of its width from the low end.

    A decision "within" leaves the part above the cut (1 - x of it), "below" the part under it (x).
    The cut that gives every outcome the same cost per halving of the bracket (binary search with
    unequal costs) solves 1 - x = 2^(-above t), x = 2^(-below t) for the t with
    2^(-above t) + 2^(-below t) = 1. Equal costs give 0.5 (plain bisection); a cheap "below" moves the
    cut towards the high end, so that fewer of the costly "within" decisions are asked.
    """
    if above <= 0 or below <= 0:
        raise ValueError("decision costs must be positive")
    lo, hi = 0.0, 1.0 / min(above, below)  # sum(t) falls from 2 at t = 0; at hi it is < 1
    for _ in range(100):
        t = (lo + hi) / 2
        if 2 ** (-above * t) + 2 ** (-below * t) > 1:
            lo = t
        else:
            hi = t
    return 2 ** (-below * (lo + hi) / 2)
