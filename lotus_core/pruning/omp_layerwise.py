"""Layer-wise magnitude pruning: the smallest |w| of each scoped tensor, the same sparsity in every one
(``torch.nn.utils.prune.l1_unstructured`` per tensor, its count rule; docs/audit.md)."""
from __future__ import annotations

from .ranking import LayerRanking, MaskFn


def omp_layerwise(params, options) -> MaskFn:
    return LayerRanking({n: p.abs() for n, p in params.items()}).mask
