"""How alike are two pruning masks, and how alike would chance make them?

The Essential Sparsity paper compares one-shot magnitude (OMP) masks with lottery-ticket
masks by the cosine similarity of the flattened keep-masks and reports above 96% within the
essential range. That number must be read against chance: two *independent random* masks
with densities d1 and d2 already have an expected cosine of about sqrt(d1 * d2) (0.9 for two
10%-sparse masks). Every similarity here comes with its chance level, computed for random
masks with the same number kept in every layer.

- cosine of keep-masks A, B: |A ∩ B| / sqrt(|A| |B|); chance: E|A ∩ B| = sum_l k1_l k2_l / n_l
  (exact: the overlap of two fixed-size random subsets is hypergeometric).
- Jaccard of the *pruned* sets P, Q: |P ∩ Q| / |P ∪ Q|; chance: E|P ∩ Q| / (|P| + |Q| - E|P ∩ Q|),
  the ratio of expectations, whose error is of order Var / mean^2 (below 1e-4 for layers of
  thousands of weights; checked against Monte Carlo in the tests).
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd
import torch

from .errors import LotusError
from .pruning.mask import Mask


def check_compatible(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    """Raise LotusError naming the first parameter that differs in name or shape."""
    only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
    if only_a or only_b:
        name = (only_a or only_b)[0]
        side = "first" if only_a else "second"
        raise LotusError(f"the masks cover different parameters ({name!r} is only in the {side}); "
                         "compare masks of the same model and scope")
    for n in a:
        if a[n].shape != b[n].shape:
            raise LotusError(f"mask shapes differ for {n!r}: {tuple(a[n].shape)} vs {tuple(b[n].shape)}; "
                             "compare masks of the same model")


def _stats(counts: list[tuple[int, int, int, int]]) -> dict:
    """counts: per layer (n, kept_a, kept_b, kept_both)."""
    n = sum(c[0] for c in counts)
    ka, kb, both = sum(c[1] for c in counts), sum(c[2] for c in counts), sum(c[3] for c in counts)
    expected_both = sum(c[1] * c[2] / c[0] for c in counts if c[0])
    pa, pb = n - ka, n - kb
    pruned_both = n - ka - kb + both  # |P ∩ Q| = n - |A ∪ B|
    expected_pruned_both = sum((c[0] - c[1]) * (c[0] - c[2]) / c[0] for c in counts if c[0])
    cos = both / math.sqrt(ka * kb) if ka and kb else 0.0
    chance_cos = expected_both / math.sqrt(ka * kb) if ka and kb else 0.0
    union = pa + pb - pruned_both
    jac = pruned_both / union if union else 1.0
    exp_union = pa + pb - expected_pruned_both
    chance_jac = expected_pruned_both / exp_union if exp_union else 1.0
    return {"cosine": cos, "chance_cosine": chance_cos, "jaccard_pruned": jac, "chance_jaccard_pruned": chance_jac,
            "sparsity_a": pa / n if n else 0.0, "sparsity_b": pb / n if n else 0.0, "numel": n}


def _counts(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int, int]:
    return a.numel(), int(a.sum()), int(b.sum()), int((a & b).sum())


def mask_similarity(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict:
    """Overall and per-layer cosine and pruned-set Jaccard, each with its chance level."""
    check_compatible(a, b)
    per_layer = {n: _counts(a[n].bool(), b[n].bool()) for n in a}
    return {**_stats(list(per_layer.values())), "per_layer": {n: _stats([c]) for n, c in per_layer.items()}}


def similarity_matrix(masks: Mapping[str, Mask], measure: str = "cosine") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise ``measure`` ("cosine" or "jaccard_pruned") over labelled masks, and its chance matrix."""
    labels = list(masks)
    values = pd.DataFrame(index=labels, columns=labels, dtype=float)
    chance = values.copy()
    for i, x in enumerate(labels):
        for y in labels[i:]:
            s = mask_similarity(masks[x], masks[y])
            values.loc[x, y] = values.loc[y, x] = s[measure]
            chance.loc[x, y] = chance.loc[y, x] = s[f"chance_{measure}"]
    return values, chance
