"""Attention maps of a timm ViT, read with timm's own ``timm.utils.AttentionExtract``.

``AttentionExtract`` (fx mode) returns the output of each attention ``softmax`` node, which
exists only on the non-fused attention path. :func:`unfused_attention` switches
``fused_attn`` off on the attention modules for the duration of a ``with`` block and restores
every module's own value (and the model's train/eval mode) afterwards. The extractor is
traced inside that block: fx fixes the ``if self.fused_attn`` branch at trace time, so the
traced graph keeps computing the non-fused path after the model's flags are restored, and
ordinary evaluation never loses the fast fused kernel (``scaled_dot_product_attention``)
for longer than a trace. The graph shares the model's parameters and copies nothing.

Tracing costs about a second (fx traces the model several times), so each model keeps its
traced extractor in a weak cache: the dashboard's cached base model traces once, and a model
copy that is dropped takes its extractor with it. The cache entry is rebuilt when the model's
module structure changes. A lock serialises the flag switching, since the dashboard shares one
cached model between sessions.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Iterator

import torch
from torch import nn

from ..core.errors import LotusError

_FLAGS_LOCK = threading.RLock()
# model -> (ids of its modules when traced, its traced extractor); entries die with their model
_EXTRACTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The modules with a fused/non-fused attention switch (timm's ``fused_attn``)."""
    return [m for m in model.modules() if hasattr(m, "fused_attn")]


@contextlib.contextmanager
def unfused_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every attention module of ``model`` takes the non-fused path."""
    modules = attention_modules(model)
    if not modules:
        raise LotusError(f"{type(model).__name__} has no attention blocks; use the captum-ablation, captum-ig or "
                         "random scorer for this model")
    with _FLAGS_LOCK:
        saved = [m.fused_attn for m in modules]
        training = model.training
        try:
            for m in modules:
                m.fused_attn = False
            yield model
        finally:
            for m, value in zip(modules, saved):
                m.fused_attn = value
            model.train(training)


def trace_extractor(model: nn.Module) -> nn.Module:
    """timm's ``AttentionExtract`` traced on the non-fused path; the model's flags are restored on return."""
    from timm.utils import AttentionExtract

    with unfused_attention(model):
        try:
            return AttentionExtract(model, method="fx")
        except RuntimeError as exc:  # no softmax node matched (an attention variant timm cannot trace)
            raise LotusError(f"cannot read attention maps of {type(model).__name__} ({str(exc)[:120]}); "
                             "use the captum-ablation, captum-ig or random scorer") from None


def attention_extractor(model: nn.Module) -> nn.Module:
    """The traced extractor of ``model``, from the weak cache when its module structure is unchanged."""
    structure = tuple(id(m) for m in model.modules())
    with _FLAGS_LOCK:
        cached = _EXTRACTORS.get(model)
        if cached is None or cached[0] != structure:
            cached = (structure, trace_extractor(model))
            _EXTRACTORS[model] = cached
    return cached[1]


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
