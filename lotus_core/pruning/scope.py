"""Which weights are pruned.

As in the Essential Sparsity paper's code, the default scope is the weight of every Linear
layer inside the transformer blocks (attention qkv and proj, MLP fc1 and fc2); patch
embedding, position and class tokens, norms, biases and the classifier head stay dense.
"""
from __future__ import annotations

from torch import nn

from ..core.errors import LotusError

SCOPES: dict[str, str] = {
    "blocks": "weights of every Linear layer inside the transformer blocks (qkv, proj, fc1, fc2)",
    "blocks+head": "the block Linear weights plus the classifier head weight",
}


def scoped_parameters(model: nn.Module, scope: str = "blocks") -> dict[str, nn.Parameter]:
    """Parameters in ``scope``, in ``model.named_parameters()`` order, keyed by their names."""
    if scope not in SCOPES:
        raise LotusError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if not hasattr(model, "blocks"):
        raise LotusError("this model has no transformer blocks (model.blocks); pruning scopes need a timm ViT")
    names = {f"blocks.{name}.weight" for name, mod in model.blocks.named_modules() if isinstance(mod, nn.Linear)}
    if scope == "blocks+head" and isinstance(getattr(model, "head", None), nn.Linear):
        names.add("head.weight")
    return {n: p for n, p in model.named_parameters() if n in names}
