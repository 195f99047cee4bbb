"""Layer-wise magnitude pruning: the smallest |w| of each scoped tensor, the same sparsity in every one."""
from __future__ import annotations

from .ranking import LayerRanking, MaskFn


def omp_layerwise(params, options) -> MaskFn:
    return LayerRanking({n: p.abs() for n, p in params.items()}).mask
