"""Layer-wise magnitude pruning: the same sparsity in every scoped weight tensor."""
from __future__ import annotations

from .ranking import layerwise_mask


def omp_layerwise(params, sparsity, options):
    return layerwise_mask({n: p.abs() for n, p in params.items()}, sparsity)
