"""Attention maps of a timm ViT, read with forward hooks (timm's ``AttentionExtract``, hook method)
on a private copy of the model's module tree.

timm's attention modules compute the post-softmax attention only on their non-fused path
(``fused_attn = False``; the fused one calls ``scaled_dot_product_attention``), and the softmax
output passes through the module's ``attn_drop`` (identity in eval mode), where a forward hook
reads it. Neither the flag nor the hooks may touch the model itself: the dashboard shares one
cached model between sessions, and another session's forward pass would see the switched flag or
fire the hooks. So each call works on :func:`private_copy`, a new tree of module objects that
shares every parameter and buffer with the model (no tensor is copied; weights changed in place
are seen), sets ``fused_attn = False`` there and hooks that copy's ``attn_drop`` modules. Nothing
process-wide is changed (no ``torch.fx`` tracing, which patches ``nn.Module.__call__`` for the
whole process while it traces, and no ``timm.layers.set_fused_attn``; see
:mod:`lotus_core.core.isolation`), so concurrent sessions cannot break each other.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..core.errors import LotusError


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The modules with a fused/non-fused attention switch (timm's ``fused_attn``)."""
    return [m for m in model.modules() if hasattr(m, "fused_attn")]


def private_copy(model: nn.Module) -> nn.Module:
    """A new tree of module objects over the same parameters and buffers as ``model``.

    Attributes set on the copy (``fused_attn``, train/eval mode) and hooks registered on it stay on
    the copy; tensors are shared, so the copy computes what the model computes. Hooks already on the
    model are kept (a copy of each hook dict, not the dict itself).
    """
    twin = copy.copy(model)  # shallow: every attribute is the model's own object
    for name, value in vars(model).items():
        if isinstance(value, dict):  # _parameters, _buffers, _modules, the hook dicts
            vars(twin)[name] = copy.copy(value)
    twin._modules = {name: None if child is None else private_copy(child) for name, child in model._modules.items()}
    return twin


def attention_extractor(model: nn.Module) -> nn.Module:
    """timm's ``AttentionExtract`` (forward hooks on ``attn_drop``) over a private non-fused copy of ``model``."""
    from timm.utils import AttentionExtract

    twin = private_copy(model).eval()
    names = [name for name, m in twin.named_modules() if hasattr(m, "fused_attn")]
    if not names:
        raise LotusError(f"{type(model).__name__} has no attention blocks; use the captum-ablation, captum-ig or "
                         "random scorer for this model")
    for name in names:
        module = twin.get_submodule(name)
        if not isinstance(getattr(module, "attn_drop", None), nn.Module):
            raise LotusError(f"cannot read attention maps of {type(model).__name__} ({type(module).__name__} has "
                             "no attn_drop); use the captum-ablation, captum-ig or random scorer")
        module.fused_attn = False
    return AttentionExtract(twin, names=[f"{name}.attn_drop" for name in names], method="hook")


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Post-softmax attention of every block, in block order, each ``(B, heads, N, N)`` fp32.

    ``N`` counts the prefix tokens (CLS first, then registers) and then the patch tokens.
    """
    maps = attention_extractor(model)(x.float())
    return [a.float() for a in maps.values()]


def fuse_heads(attn: torch.Tensor, how: str) -> torch.Tensor:
    """Fuse the heads of ``(B, heads, N, N)`` attention by ``mean``, ``max`` or ``min`` -> ``(B, N, N)``."""
    if how == "mean":
        return attn.mean(dim=1)
    if how == "max":
        return attn.amax(dim=1)
    if how == "min":
        return attn.amin(dim=1)
    raise LotusError(f"unknown head fusion {how!r}; choose mean, max or min")


def require_cls_token(model: nn.Module) -> None:
    """CLS-based scorers read the CLS token's row of attention maps: a model without attention
    blocks or without a CLS token cannot use them."""
    if not attention_modules(model):
        raise LotusError(f"{type(model).__name__} has no attention blocks; use the captum-ablation, captum-ig or "
                         "random scorer for this model")
    if getattr(model, "cls_token", None) is None:
        raise LotusError(f"{type(model).__name__} has no CLS token; use the captum-ablation, captum-ig or random "
                         "scorer for this model")
