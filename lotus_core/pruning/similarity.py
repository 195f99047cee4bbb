"""How alike are two pruning masks, and how alike would chance make them?

The Essential Sparsity paper (Jaiswal et al., NeurIPS 2023) compares one-shot magnitude (OMP)
masks with lottery-ticket masks by the cosine similarity of the flattened keep-masks and
reports above 96% within the essential range. That number must be read against chance: two
*independent random* masks with densities d1 and d2 already score about sqrt(d1 * d2) (0.9
for two 10%-sparse masks). Every similarity here comes with its chance level: the exact
expected value for two independent masks drawn uniformly at random with the same number of
kept weights in every layer as the two compared. All values are fractions in [0, 1].

Per layer of n weights with k1, k2 kept (A, B) and p1 = n - k1, p2 = n - k2 pruned (P, Q), the
overlap of two fixed-size random subsets is hypergeometric: E|A ∩ B| = k1 k2 / n.

- cosine of keep-masks: |A ∩ B| / sqrt(k1 k2), overall summed over layers; chance:
  sum_l k1_l k2_l / n_l / sqrt(K1 K2), exact (the denominator is fixed).
- Jaccard of pruned sets: X / (p1 + p2 - X) with X = |P ∩ Q| ~ Hypergeometric(n, p1, p2).
  Per layer (and overall for a single-layer mask) the chance level is the exact
  E[X / (p1 + p2 - X)], summed over the support of X. Overall over several layers, X is a sum
  of independent hypergeometrics and the chance level is its
  second-order (delta-method) expectation mu / (c - mu) + c var / (c - mu)^3 with
  c = P1 + P2, mu = E X and var = Var X, whose error is of order c E|X - mu|^3 / (c - mu)^4
  (below 1e-6 for layers of a few hundred weights; checked against Monte Carlo in the tests).
  Two empty pruned sets have Jaccard 1.
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd
import torch

from ..core.errors import LotusError

MEASURES = {"cosine": "cosine similarity of keep-masks", "jaccard_pruned": "Jaccard index of pruned sets"}


def check_compatible(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    """Raise LotusError naming the first parameter that differs in name or shape."""
    for name in list(a) + [n for n in b if n not in a]:
        if name not in a or name not in b:
            side = "first" if name in a else "second"
            raise LotusError(f"the masks cover different parameters ({name!r} is only in the {side}); "
                             "compare masks of the same model and scope")
        if a[name].shape != b[name].shape:
            raise LotusError(f"mask shapes differ for {name!r}: {tuple(a[name].shape)} vs {tuple(b[name].shape)}; "
                             "compare masks of the same model")


def _hypergeometric(n: int, p1: int, p2: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Support and probabilities of |P ∩ Q| for random subsets of sizes p1, p2 of n (float64)."""
    x = torch.arange(max(0, p1 + p2 - n), min(p1, p2) + 1, dtype=torch.float64)

    def log_choose(a, b):
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

    log_pmf = log_choose(p1, x) + log_choose(n - p1, p2 - x) - log_choose(n, p2)
    return x, torch.exp(log_pmf)


def chance_jaccard_exact(n: int, p1: int, p2: int) -> float:
    """Exact E[|P ∩ Q| / |P ∪ Q|] for independent uniform subsets of sizes p1, p2 of n items."""
    if p1 + p2 == 0:
        return 1.0
    x, pmf = _hypergeometric(n, p1, p2)
    return float((pmf * x / (p1 + p2 - x)).sum())


def _layer_counts(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int, int]:
    """(n, kept in a, kept in b, kept in both)."""
    return a.numel(), int(a.sum()), int(b.sum()), int((a & b).sum())


def _measures(counts: list[tuple[int, int, int, int]]) -> dict:
    """Similarities and chance levels of masks with the given per-layer counts (see module docstring)."""
    n = sum(c[0] for c in counts)
    k1, k2, both = (sum(c[i] for c in counts) for i in (1, 2, 3))
    p1, p2 = n - k1, n - k2
    pruned_both = n - k1 - k2 + both  # |P ∩ Q| = n - |A ∪ B|
    union = p1 + p2 - pruned_both
    mu = sum((m - a) * (m - b) / m for m, a, b, _ in counts if m)
    if len(counts) == 1:
        m, a, b, _ = counts[0]
        chance_jac = chance_jaccard_exact(m, m - a, m - b)
    else:
        var = sum(a * b * (m - a) * (m - b) / (m * m * (m - 1)) for m, a, b, _ in counts if m > 1)
        c = p1 + p2
        chance_jac = mu / (c - mu) + c * var / (c - mu) ** 3 if c - mu > 0 else 1.0
    kept = math.sqrt(k1 * k2)
    return {"cosine": both / kept if kept else 0.0,
            "chance_cosine": sum(a * b / m for m, a, b, _ in counts if m) / kept if kept else 0.0,
            "jaccard_pruned": pruned_both / union if union else 1.0,
            "chance_jaccard_pruned": chance_jac,
            "sparsity_a": p1 / n if n else 0.0, "sparsity_b": p2 / n if n else 0.0, "numel": n}


def mask_similarity(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict:
    """Overall and per-layer similarity of two keep-masks, each with its chance level.

    Returns ``{"cosine", "chance_cosine", "jaccard_pruned", "chance_jaccard_pruned",
    "sparsity_a", "sparsity_b", "numel", "per_layer": {name: {the same keys}}}`` (fractions).
    Raises LotusError when the masks cover different parameter names or shapes.
    """
    check_compatible(a, b)
    counts = {name: _layer_counts(a[name].bool(), b[name].bool()) for name in a}
    return {**_measures(list(counts.values())), "per_layer": {name: _measures([c]) for name, c in counts.items()}}


def similarity_matrix(masks: Mapping[str, Mapping[str, torch.Tensor]], measure: str = "cosine"
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise ``measure`` (a key of MEASURES) over labelled masks, and the matching chance matrix."""
    if measure not in MEASURES:
        raise LotusError(f"unknown similarity measure {measure!r}; choose one of {', '.join(MEASURES)}")
    labels = list(masks)
    values = pd.DataFrame(index=labels, columns=labels, dtype=float)
    chance = values.copy()
    for i, x in enumerate(labels):
        for y in labels[i:]:
            s = mask_similarity(masks[x], masks[y])
            values.loc[x, y] = values.loc[y, x] = s[measure]
            chance.loc[x, y] = chance.loc[y, x] = s[f"chance_{measure}"]
    return values, chance
