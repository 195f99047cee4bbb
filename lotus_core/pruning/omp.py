"""One-shot global magnitude pruning (OMP): prune the smallest |w| across all scoped weights.

The method of "The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal
et al., NeurIPS 2023). Masks equal those of ``torch.nn.utils.prune.global_unstructured``
with ``L1Unstructured`` over the same tensors (measured on the default ViT: identical, docs/audit.md),
and are nested across sparsities.
"""
from __future__ import annotations

from .ranking import GlobalRanking, MaskFn


def omp(params, options) -> MaskFn:
    return GlobalRanking({n: p.abs() for n, p in params.items()}).mask
