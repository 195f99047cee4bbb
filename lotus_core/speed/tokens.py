"""Token reduction inside a timm ViT: fewer tokens per block means less work in every later block.

- **EViT** (Liang et al., "Not All Patches are What You Need: Expediting Vision Transformers via
  Token Reorganizations", ICLR 2022): at chosen blocks, after attention, keep the ``keep`` fraction
  of patch tokens that the CLS token attends to most (heads averaged); optionally fuse the rest
  into one token, ``sum_i a_i x_i`` with ``a_i`` that attention (not renormalised: the authors'
  youweiliang/evit ``evit.py``, ``Block.forward``, sums without dividing by ``sum_i a_i``).
- **ToMe** (Bolya et al., "Token Merging: Your ViT but Faster", ICLR 2023): in every block, after
  attention, split the tokens alternately into sets A and B, match each A token to its most
  similar B token (cosine of the attention keys, averaged over heads), and merge the ``r`` best
  matched pairs (size-weighted average; the CLS token is never merged). Merged tokens count
  for their size in later attention (proportional attention: ``+ log(size)`` on the logits).
- **PatchDropout** (timm's ``PatchDropout``; Liu et al., "PatchDropout: Economizing Vision
  Transformers Using Patch Dropout", WACV 2023): a random ``prob`` fraction of the patch tokens
  dropped after the position embedding, the random control for the two above.

The forwards run the model's own modules (patch embedding, position embedding, norms, qkv,
projections, MLPs, head); attention is written out so that its weights can be read. With
nothing to remove (``keep`` = 1, ``r`` = 0) each equals ``model(x)``. A ``counts`` list, when given,
receives the number of tokens entering each block and the number leaving the last one.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..core.errors import LotusError


def _check(model: nn.Module) -> None:
    if not all(hasattr(model, a) for a in ("patch_embed", "_pos_embed", "blocks", "forward_head", "num_prefix_tokens")):
        raise LotusError(f"token reduction needs a timm VisionTransformer; {type(model).__name__} is not one")
    if getattr(model, "cls_token", None) is None:
        raise LotusError("EViT and ToMe need a model with a CLS token")


def _embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    tokens = model._pos_embed(model.patch_embed(x))  # (B, prefix + P, D)
    return model.norm_pre(model.patch_drop(tokens))


def _attention(attn: nn.Module, x: torch.Tensor, log_size: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """timm Attention written out: (output (B, N, D), weights (B, H, N, N), keys (B, H, N, hd)).

    ``log_size`` (B, N) is added to every query's logits for each key (ToMe's proportional attention).
    """
    b, n, _ = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, H, N, hd)
    q, k = attn.q_norm(q), attn.k_norm(k)
    logits = (q * attn.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
    if log_size is not None:
        logits = logits + log_size[:, None, None, :]
    weights = logits.softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, attn.num_heads * attn.head_dim)
    return attn.proj(attn.norm(out)), weights, k


def _mlp(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def evit_blocks(depth: int) -> list[int]:
    """Blocks that reduce tokens: a quarter, half and three quarters of the way (EViT's 4th, 7th, 10th of 12)."""
    return sorted({min(depth - 1, max(0, int(depth * f))) for f in (0.25, 0.5, 0.75)})


def evit_forward(model: nn.Module, x: torch.Tensor, keep: float, fuse: bool = True,
                 blocks: list[int] | None = None, counts: list[int] | None = None) -> torch.Tensor:
    """Logits with EViT token reorganisation: ``keep`` of the patch tokens kept at each of ``blocks``
    (default :func:`evit_blocks`), the rest fused into one token when ``fuse``."""
    _check(model)
    if not 0.0 < keep <= 1.0:
        raise LotusError(f"EViT keep rate {keep} is outside (0, 1]")
    prefix = model.num_prefix_tokens
    reduce_at = set(evit_blocks(len(model.blocks)) if blocks is None else blocks)
    x = _embed(model, x)
    for i, block in enumerate(model.blocks):
        if counts is not None:
            counts.append(x.shape[1])
        if i not in reduce_at:
            x = block(x)
            continue
        out, weights, _ = _attention(block.attn, block.norm1(x))
        x = x + block.drop_path1(block.ls1(out))
        patches = x.shape[1] - prefix
        k = math.ceil(keep * patches)
        if k < patches:
            cls_attn = weights[:, :, 0, prefix:].mean(dim=1)  # (B, P): how much CLS attends to each patch token
            order = cls_attn.argsort(dim=1, descending=True)
            kept, rest = order[:, :k], order[:, k:]
            gather = lambda idx: x[:, prefix:].gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # noqa: E731
            parts = [x[:, :prefix], gather(kept)]
            if fuse:
                w = cls_attn.gather(1, rest).unsqueeze(-1)  # (B, P - k, 1)
                parts.append((gather(rest) * w).sum(dim=1, keepdim=True))  # sum a_i x_i, as the authors (no division)
            x = torch.cat(parts, dim=1)
        x = _mlp(block, x)
    if counts is not None:
        counts.append(x.shape[1])
    return model.forward_head(model.norm(x))


def _merge(x: torch.Tensor, size: torch.Tensor, keys: torch.Tensor, r: int, prefix: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """ToMe's bipartite soft matching: merge ``r`` tokens of ``x`` (B, N, D) with sizes ``size`` (B, N).

    Set A is tokens 0, 2, 4, ..., set B tokens 1, 3, 5, ...; the prefix (CLS) tokens are never merged.
    Returns the merged tokens (B, N - r, D), A's unmerged tokens first (in their order), then B.
    """
    metric = keys.mean(dim=1)  # (B, N, hd)
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(-1, -2)  # (B, Na, Nb) cosine similarity
    protected = torch.arange(0, x.shape[1], 2, device=x.device) < prefix  # A positions holding prefix tokens
    scores[:, protected] = -math.inf
    scores[:, :, torch.arange(1, x.shape[1], 2, device=x.device) < prefix] = -math.inf
    best, partner = scores.max(dim=-1)  # (B, Na)
    order = best.argsort(dim=-1, descending=True)
    merged, unmerged = order[:, :r], order[:, r:].sort(dim=-1).values  # A tokens merged away / kept (in order)
    dim = x.shape[-1]
    xa, xb = (x * size.unsqueeze(-1))[:, ::2], (x * size.unsqueeze(-1))[:, 1::2]  # size-weighted sums
    sa, sb = size[:, ::2], size[:, 1::2]
    target = partner.gather(1, merged)  # (B, r) B index each merged A token joins
    xb = xb.scatter_add(1, target.unsqueeze(-1).expand(-1, -1, dim), xa.gather(1, merged.unsqueeze(-1).expand(-1, -1, dim)))
    sb = sb.scatter_add(1, target, sa.gather(1, merged))
    xa_keep = xa.gather(1, unmerged.unsqueeze(-1).expand(-1, -1, dim))
    sa_keep = sa.gather(1, unmerged)
    size = torch.cat([sa_keep, sb], dim=1)
    return torch.cat([xa_keep, xb], dim=1) / size.unsqueeze(-1), size


def tome_forward(model: nn.Module, x: torch.Tensor, r: int, counts: list[int] | None = None) -> torch.Tensor:
    """Logits with ToMe: ``r`` tokens merged in every block (fewer when too few are left), with
    proportional attention."""
    _check(model)
    if r < 0:
        raise LotusError(f"ToMe r = {r} must be at least 0 (tokens merged per block)")
    prefix = model.num_prefix_tokens
    x = _embed(model, x)
    size = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)  # (B, N) tokens each token stands for
    for block in model.blocks:
        if counts is not None:
            counts.append(x.shape[1])
        out, _, keys = _attention(block.attn, block.norm1(x), size.log())
        x = x + block.drop_path1(block.ls1(out))
        step = min(r, (x.shape[1] - prefix) // 2)
        if step > 0:
            x, size = _merge(x, size, keys, step, prefix)
        x = _mlp(block, x)
    if counts is not None:
        counts.append(x.shape[1])
    return model.forward_head(model.norm(x))


def _inference_patch_dropout(prob: float, num_prefix_tokens: int) -> nn.Module:
    """timm's PatchDropout, dropping in eval mode too (timm's own only drops while training)."""
    from timm.layers import PatchDropout
    from timm.layers.patch_dropout import patch_dropout_forward

    class InferencePatchDropout(PatchDropout):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return patch_dropout_forward(x, self.prob, self.num_prefix_tokens, self.ordered, True)[0]

    return InferencePatchDropout(prob, num_prefix_tokens=num_prefix_tokens)


def with_patch_dropout(model: nn.Module, prob: float) -> nn.Module:
    """A copy of ``model`` whose timm ``PatchDropout`` drops a random ``prob`` of the patch tokens, in eval mode too."""
    _check(model)
    if not 0.0 <= prob < 1.0:
        raise LotusError(f"patch dropout {prob} is outside [0, 1)")
    out = copy.deepcopy(model).eval()
    out.patch_drop = _inference_patch_dropout(prob, model.num_prefix_tokens)
    return out


def patch_dropout_counts(model: nn.Module, prob: float) -> list[int]:
    """Tokens entering each block (and leaving the last) with timm's PatchDropout at ``prob``."""
    patches = model.patch_embed.num_patches
    n = model.num_prefix_tokens + (max(1, int(patches * (1.0 - prob))) if prob > 0 else patches)
    return [n] * (len(model.blocks) + 1)


__all__ = ["evit_forward", "evit_blocks", "tome_forward", "with_patch_dropout", "patch_dropout_counts"]
