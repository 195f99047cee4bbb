"""A ViT's architecture: the dict that builds it, its bounds, and the input it expects.

``lotus_arch`` (a checkpoint's header entry, or ``--arch``) is a timm model name plus the keyword
arguments that resize it (:data:`DEFAULT_ARCH` is the embedded default ViT's). Header entries are data from a
file, never trusted: :func:`parse_meta_json` decodes them and :func:`validate_arch` holds them to the
allow-list :data:`ARCH_KEYS` and its bounds before :func:`build_from_arch` builds anything.
:func:`data_config` is the input a model expects (size, mean, std), read from timm's config and the ViT's
own geometry.
"""
from __future__ import annotations

import functools
import json
import math
import warnings
from typing import Any, Callable

import timm
import torch
from torch import nn

from ..core.errors import LotusError, first_line


# The default ViT: 28x28 grayscale, patch 4 -> a 7x7 grid of 49 patches plus the CLS token.
DEFAULT_ARCH: dict[str, Any] = {
    "model_name": "vit_tiny_patch16_224",  # timm VisionTransformer family; the kwargs below resize it
    "img_size": 28,
    "patch_size": 4,
    "in_chans": 1,
    "num_classes": 10,
    "embed_dim": 96,
    "depth": 6,
    "num_heads": 3,
    "mlp_ratio": 3.0,
}
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
MAX_META_CHARS = 8 << 20  # a checkpoint header entry larger than this is not LOTUS metadata


def parse_meta_json(text: Any, key: str, source: str) -> Any:
    """The JSON value of checkpoint header entry ``key`` (``lotus_arch``, ``lotus_head``); one LotusError for
    text that is not JSON, too large, or nested too deep to decode (a header is data, never trusted)."""
    if not isinstance(text, str) or len(text) > MAX_META_CHARS:
        raise LotusError(f"{source}: {key} metadata is not JSON text of at most {MAX_META_CHARS >> 20} MB; "
                         "re-save the checkpoint")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; 10k+ nested brackets recurse
        raise LotusError(f"{source}: {key} metadata is not valid JSON; re-save the checkpoint") from None


def require_vit(model: nn.Module, name: str) -> None:
    """Refuse a model outside timm's VisionTransformer family (pruning scopes, heads, patches and speed
    methods all address a ViT's blocks, attention and patch grid)."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise LotusError(f"{name} is a {type(model).__name__}, not a Vision Transformer; LOTUS handles timm "
                         "VisionTransformer-family models (vit_*, deit_*)")


def head_outputs(model: nn.Module) -> int:
    """Output units of the classifier (``model.num_classes`` for timm models)."""
    return int(getattr(model, "num_classes", 0) or model.get_classifier().out_features)


# Architecture keys a checkpoint's ``lotus_arch`` metadata (or --arch) may carry, with their bounds: any
# other key (e.g. timm's ``checkpoint_path``, which opens another file) is refused, and so is a size
# that would make the loader allocate far more than a LOTUS ViT needs.
ARCH_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "img_size": (8, 1024), "patch_size": (1, 64), "in_chans": (1, 4), "num_classes": (1, 100_000),
    "embed_dim": (8, 2048), "depth": (1, 48), "num_heads": (1, 64), "attn_head_dim": (1, 512),
}
ARCH_FLOAT_BOUNDS: dict[str, tuple[float, float]] = {"mlp_ratio": (0.25, 16.0)}
ARCH_KEYS = frozenset({"model_name", "mean", "std", *ARCH_INT_BOUNDS, *ARCH_FLOAT_BOUNDS})


def validate_arch(arch: Any, source: str) -> dict[str, Any]:
    """``arch`` checked against the allow-list :data:`ARCH_KEYS` and its bounds; raises LotusError.

    ``model_name`` must be a timm model; whole numbers must lie in :data:`ARCH_INT_BOUNDS`, the MLP
    ratio in :data:`ARCH_FLOAT_BOUNDS`; ``mean``/``std`` are lists of finite numbers (std > 0).
    """
    if not isinstance(arch, dict):
        raise LotusError(f"{source}: lotus_arch must be a JSON object, not {type(arch).__name__}; re-save the checkpoint")
    extra = sorted(set(arch) - ARCH_KEYS)
    if extra:
        raise LotusError(f"{source}: lotus_arch carries unsupported key {extra[0]!r}; allowed: "
                         f"{', '.join(sorted(ARCH_KEYS))}")
    name = arch.get("model_name")
    if not isinstance(name, str) or not name:
        raise LotusError(f"{source}: lotus_arch lacks model_name (a timm architecture such as vit_tiny_patch16_224)")
    if not timm.is_model(name.split(".")[0]):
        raise LotusError(f"{source}: unknown architecture {name!r}; name a timm model such as vit_tiny_patch16_224")
    for key, (lo, hi) in ARCH_INT_BOUNDS.items():
        value = arch.get(key)
        if key in arch and (isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi):
            raise LotusError(f"{source}: lotus_arch {key}={value!r} is outside {lo}..{hi}")
    for key, (lo, hi) in ARCH_FLOAT_BOUNDS.items():
        value = arch.get(key)
        if key in arch and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not lo <= value <= hi):
            raise LotusError(f"{source}: lotus_arch {key}={value!r} is outside [{lo}, {hi}]")
    for key in ("mean", "std"):
        value = arch.get(key)
        if key not in arch:
            continue
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value) or (
                key == "std" and min(value) <= 0):
            raise LotusError(f"{source}: lotus_arch {key}={value!r} is not a list of 1 to 4 finite numbers"
                             f"{' above 0' if key == 'std' else ''}")
    if ("mean" in arch) != ("std" in arch):
        raise LotusError(f"{source}: lotus_arch gives {'mean' if 'mean' in arch else 'std'} without the other")
    if "mean" in arch and "img_size" not in arch:
        raise LotusError(f"{source}: lotus_arch gives mean/std without img_size")
    return dict(arch)


def instantiate(arch: dict[str, Any], **overrides: Any) -> nn.Module:
    """timm's model for ``arch`` (untrained; ``overrides`` replace its keywords); a build timm refuses is one
    LotusError."""
    kwargs = {k: v for k, v in arch.items() if k not in ("model_name", "mean", "std", "attn_head_dim")}
    if arch.get("attn_head_dim") is not None:  # a head-pruned ViT: fewer heads of the original width
        kwargs["attn_layer"] = head_width_attention(int(arch["attn_head_dim"]))
    try:
        return timm.create_model(arch["model_name"], pretrained=False, **{**kwargs, **overrides})
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        msg = first_line(exc)
        raise LotusError(f"architecture {arch['model_name']} cannot be built with {kwargs} ({msg})") from None


def on_meta(build: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    """``build(*args, **kwargs)`` on the meta device, for names and shapes only (nothing is allocated).

    timm's weight init is skipped where the model takes ``weight_init="skip"`` (the ViTs): initialising meta tensors
    runs through torch's Python references, whose first call imports torch._dynamo (docs/responsive.md).
    A model without that keyword is built with its init."""
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return build(*args, **{**kwargs, "weight_init": "skip"})
        except (TypeError, LotusError):  # no such keyword here (timm's TypeError, or instantiate's LotusError of it)
            return build(*args, **kwargs)


def build_from_arch(arch: dict[str, Any]) -> nn.Module:
    """Create an untrained timm model from an architecture dict (``model_name`` + kwargs).

    ``attn_head_dim`` (a structurally head-pruned ViT: fewer heads of the original width) becomes
    timm's Attention with that head width (:func:`head_width_attention`).
    """
    model = instantiate(arch)
    if "mean" in arch:
        model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(arch["mean"]), "std": tuple(arch["std"]),
                                "input_size": (arch.get("in_chans", 3), arch["img_size"], arch["img_size"])}
    return model


@functools.lru_cache(maxsize=None)
def head_width_attention(head_dim: int) -> type:
    """timm's Attention with heads of width ``head_dim`` whatever the embedding width (timm's
    ``attn_layer`` must be a class; plain timm: ``create_model(..., attn_layer=head_width_attention(d))``)."""
    from timm.layers import Attention

    def __init__(self, dim: int, num_heads: int = 8, **kwargs: Any) -> None:
        kwargs.pop("attn_head_dim", None)
        Attention.__init__(self, dim, num_heads=num_heads, attn_head_dim=head_dim, **kwargs)

    return type(f"Attention{head_dim}", (Attention,), {"__init__": __init__, "__module__": __name__})


def default_arch() -> dict[str, Any]:
    return {**DEFAULT_ARCH, "mean": FASHION_MNIST_MEAN, "std": FASHION_MNIST_STD}


def data_config(model: nn.Module) -> dict[str, Any]:
    """timm's data config for ``model``: ``input_size`` (C, H, W), ``mean``, ``std``."""
    cfg = timm.data.resolve_data_config(model=model)
    input_size = tuple(cfg["input_size"])
    embed = getattr(model, "patch_embed", None)
    if embed is not None and getattr(embed, "img_size", None) and hasattr(embed, "proj"):
        # a ViT's own geometry wins over a pretrained config written for another size
        input_size = (embed.proj.in_channels, *embed.img_size)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if len(mean) != input_size[0]:
        mean, std = (sum(mean) / len(mean),) * input_size[0], (sum(std) / len(std),) * input_size[0]
    return {"input_size": input_size, "mean": mean, "std": std}
