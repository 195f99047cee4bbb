"""Structural pruning: attention heads and MLP hidden channels physically removed from a timm ViT.

Uses Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023), whose
dependency graph removes the coupled rows and columns together (``qkv`` output rows with the
matching ``proj`` input columns; ``fc1`` output rows with ``fc2`` input columns) and handles the
``num_heads``/``head_dim`` coupling of timm's Attention. The same fraction is removed from every
block (local ranking), so the pruned model is again a plain timm VisionTransformer with fewer
heads (``num_heads``, the head width unchanged: ``attn_head_dim``) or a narrower MLP
(``mlp_ratio``); :func:`pruned_arch` records that, and :func:`lotus_core.models.loading.load_model`
rebuilds it from a saved checkpoint.

Importance: ``magnitude`` (L2 norm of each group's weights) or ``taylor`` (|weight x gradient| on
a calibration batch; Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LotusError

KINDS = ("heads", "channels")  # what is removed
IMPORTANCES = ("magnitude", "taylor")


def _attentions(model: nn.Module) -> list[nn.Module]:
    from timm.layers import Attention

    return [m for m in model.modules() if isinstance(m, Attention)]


def _check_vit(model: nn.Module) -> None:
    blocks = getattr(model, "blocks", None)
    if blocks is None or not all(hasattr(b, "attn") and hasattr(b, "mlp") and hasattr(b.mlp, "fc1") for b in blocks) \
            or len(_attentions(model)) != len(blocks):
        raise LotusError(f"structural pruning needs a timm VisionTransformer; {type(model).__name__} is not one")


def heads_removed(num_heads: int, ratio: float) -> int:
    """Whole heads removed per block for a fraction ``ratio`` of them (rounded to the nearest head)."""
    return int(round(ratio * num_heads + 1e-9))


def prune_structure(model: nn.Module, kind: str, ratio: float, importance: str = "magnitude",
                    calib: tuple[torch.Tensor, torch.Tensor] | None = None) -> nn.Module:
    """A copy of ``model`` with a fraction ``ratio`` of each block's heads or MLP channels removed.

    Args:
        kind: ``"heads"`` (whole attention heads) or ``"channels"`` (MLP hidden channels).
        ratio: fraction removed in every block, in [0, 1); heads are rounded to whole heads.
        importance: ``"magnitude"`` or ``"taylor"`` (needs ``calib``).
        calib: ``(model input, labels)`` for Taylor importance.
    """
    import torch_pruning as tp

    _check_vit(model)
    if kind not in KINDS:
        raise LotusError(f"unknown structural pruning kind {kind!r}; choose one of {', '.join(KINDS)}")
    if importance not in IMPORTANCES:
        raise LotusError(f"unknown importance {importance!r}; choose one of {', '.join(IMPORTANCES)}")
    if not 0.0 <= ratio < 1.0:
        raise LotusError(f"pruning ratio {ratio} is outside [0, 1); give the fraction removed, e.g. 0.5")
    out = copy.deepcopy(model).eval()
    attns = _attentions(out)
    num_heads = attns[0].num_heads
    removed = heads_removed(num_heads, ratio) if kind == "heads" else 0
    if kind == "heads" and removed >= num_heads:
        raise LotusError(f"removing {ratio:.0%} of {num_heads} heads leaves none; give a smaller ratio")
    if ratio == 0 or (kind == "heads" and removed == 0):
        out.lotus_arch = pruned_arch(out, getattr(model, "lotus_arch", None))
        return out
    example = calib[0][:2] if calib is not None else torch.zeros(2, *_input_shape(out))
    # only the chosen structure may shrink: every other root layer is ignored (the residual width stays)
    ignored: list[nn.Module] = [out.head, out.patch_embed.proj]
    for b in out.blocks:
        ignored += [b.attn.proj, b.mlp.fc2, b.mlp.fc1 if kind == "heads" else b.attn.qkv]
    # Torch-Pruning removes ceil(ratio * heads) heads: aim half a head below the wanted count
    target = (removed - 0.5) / num_heads if kind == "heads" else ratio
    scorer = tp.importance.GroupMagnitudeImportance(p=2) if importance == "magnitude" else tp.importance.GroupTaylorImportance()
    kwargs: dict[str, Any] = dict(importance=scorer, ignored_layers=ignored, global_pruning=False, pruning_ratio=target)
    if kind == "heads":
        kwargs.update(num_heads={a.qkv: a.num_heads for a in attns}, prune_num_heads=True, prune_head_dims=False,
                      head_pruning_ratio=target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning warns about the unwrapped cls_token/pos_embed (left alone)
        pruner = tp.pruner.MetaPruner(out, example, **kwargs)
        if importance == "taylor":
            if calib is None:
                raise LotusError("Taylor importance needs calibration images and labels")
            out.zero_grad()
            F.cross_entropy(out(calib[0]), calib[1]).backward()
        pruner.step()
    out.zero_grad(set_to_none=True)
    if kind == "heads":
        for a in attns:
            a.num_heads = pruner.num_heads[a.qkv]
            a.head_dim = a.qkv.out_features // (3 * a.num_heads)
            a.attn_dim = a.num_heads * a.head_dim
    out.lotus_arch = pruned_arch(out, getattr(model, "lotus_arch", None))
    return out.eval()


def _input_shape(model: nn.Module) -> tuple[int, int, int]:
    embed = model.patch_embed
    return (embed.proj.in_channels, *embed.img_size)


def pruned_arch(model: nn.Module, arch: dict[str, Any] | None) -> dict[str, Any]:
    """``arch`` (the model's ``lotus_arch``) updated with the pruned widths: ``num_heads``, ``attn_head_dim``
    and ``mlp_ratio`` (hidden channels / embed dim), read off the first block (all blocks are alike)."""
    block = model.blocks[0]
    dim, hidden = block.mlp.fc1.in_features, block.mlp.fc1.out_features
    ratio = hidden / dim
    if int(dim * ratio) != hidden:  # timm rounds int(dim * mlp_ratio) down: keep the exact width
        ratio = (hidden + 0.5) / dim
    out = dict(arch or {"model_name": type(model).__name__})
    out.update(num_heads=block.attn.num_heads, attn_head_dim=block.attn.head_dim, mlp_ratio=ratio)
    return out


def structure(model: nn.Module) -> dict[str, int]:
    """Widths of the first block: heads, head width, MLP hidden channels and the parameter count."""
    block = model.blocks[0]
    return {"num_heads": block.attn.num_heads, "head_dim": block.attn.head_dim,
            "mlp_hidden": block.mlp.fc1.out_features, "params": sum(p.numel() for p in model.parameters())}


__all__ = ["KINDS", "IMPORTANCES", "prune_structure", "pruned_arch", "structure", "heads_removed"]
