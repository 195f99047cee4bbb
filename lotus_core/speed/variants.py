"""The configurations the Speed page measures: one builder per method, each giving a :class:`Variant`.

A variant is something that maps a model-input batch to logits (``forward``), the module whose
size is counted (``model``), the tokens each block sees, and the stored accuracy it shares (a
CSR model computes what the masked dense one does, so they share one accuracy). Builders never
modify the base model: they prune, convert or wrap copies.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..context import Context
from ..core.errors import first_line
from ..data.images import subset_indices, to_model_input
from ..pruning import Mask, masker
from . import sparse, structural, tokens
from .measure import Forward


@dataclass
class Variant:
    """One measured configuration."""

    method: str  # key of lotus_core.speed.METHODS
    setting: str  # human-readable setting, e.g. "50%" or "keep 0.7"; "-" for dense
    value: float  # the setting's number (sparsity, fraction removed, keep rate, r, drop)
    model: nn.Module  # the module whose parameters, bytes and memory are counted
    forward: Forward  # model input (B, C, H, W) -> logits (B, classes)
    accuracy_of: tuple[str, float] | None = None  # (method, value) whose stored accuracy this shares
    tokens: list[int] | None = None  # tokens entering each block, then leaving the last
    dtype: str = "float32"  # compute precision
    unavailable: str | None = None  # why it cannot run on this device (then nothing is measured)
    trainable: nn.Module | None = field(default=None, repr=False)  # structural: the model to fine-tune


class Variants:
    """Builds variants of ``ctx.model`` on ``device`` (one mask ranking and calibration batch per instance)."""

    def __init__(self, ctx: Context, device: torch.device, importance: str = "magnitude", fuse: bool = True,
                 calib_size: int = 64, seed: int = 0):
        self.ctx, self.device, self.importance, self.fuse = ctx, device, importance, fuse
        self.calib_size, self.seed = calib_size, seed
        self.base = ctx.model

    @functools.cached_property
    def work(self) -> nn.Module:
        """A copy of the base model on the measuring device."""
        return self.ctx.copy_model().to(self.device).eval()

    @functools.cached_property
    def omp(self) -> Callable[[float], Mask]:
        """Global magnitude masks of the block weights, ranked once."""
        return masker(self.base, "omp", "blocks")

    @functools.cached_property
    def calib(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = subset_indices(len(self.ctx.train), self.calib_size, self.seed)
        return to_model_input(self.ctx.train.images[idx], self.ctx.data_config), self.ctx.train.labels[idx]

    def _token_counts(self, forward: Callable[..., torch.Tensor]) -> list[int]:
        counts: list[int] = []
        x = torch.zeros(1, *self.ctx.data_config["input_size"], device=self.device)
        with torch.inference_mode():
            forward(x, counts=counts)
        return counts


def _pct(v: float) -> str:
    return f"{100 * v:g}%"


def build_dense(b: Variants, value: float) -> Variant:
    model = b.work
    return Variant("dense", "-", 0.0, model, model, tokens=tokens.patch_dropout_counts(model, 0.0))


def build_masked(b: Variants, value: float) -> Variant:
    model = b.omp(value).apply(b.base).to(b.device).eval()
    return Variant("masked", _pct(value), value, model, model)


def build_csr(b: Variants, value: float) -> Variant:
    if b.device.type != "cpu":
        return Variant("csr", _pct(value), value, b.work, b.work,
                       unavailable=f"the CSR method measures CPU kernels; this run measures on {b.device.type}")
    model = sparse.to_csr(b.base, b.omp(value)).eval()
    return Variant("csr", _pct(value), value, model, model, accuracy_of=("masked", value))


def build_nm(b: Variants, value: float) -> Variant:
    mask = masker(b.base, "nm", "blocks", n=2, m=4)(0.5)
    why = sparse.semi_structured_unavailable(b.device, b.base, mask)
    if why is not None:
        return Variant("nm-2:4", "2:4", 0.5, b.work, b.work, unavailable=why)
    try:  # the kernels have further shape rules (e.g. on the tokens per batch): try one batch first
        model = sparse.to_semi_structured(b.work, mask).eval()
        forward = lambda x: model(x.half()).float()  # noqa: E731
        with torch.inference_mode():
            forward(torch.zeros(1, *b.ctx.data_config["input_size"], device=b.device))
    except (RuntimeError, ValueError) as exc:
        why = first_line(exc, 200)
        return Variant("nm-2:4", "2:4", 0.5, b.work, b.work, unavailable=f"2:4 kernels refused this model: {why}")
    return Variant("nm-2:4", "2:4", 0.5, model, forward, dtype="float16")


def _structural(kind: str, b: Variants, value: float) -> Variant:
    model = structural.prune_structure(b.base, kind, value, b.importance,
                                       b.calib if b.importance == "taylor" else None).to(b.device).eval()
    w = structural.structure(model)
    setting = f"{_pct(value)} ({w['num_heads']} heads)" if kind == "heads" else f"{_pct(value)} ({w['mlp_hidden']} ch)"
    return Variant(kind, setting, value, model, model, trainable=model)


def build_heads(b: Variants, value: float) -> Variant:
    return _structural("heads", b, value)


def build_channels(b: Variants, value: float) -> Variant:
    return _structural("channels", b, value)


def build_evit(b: Variants, value: float) -> Variant:
    model = b.work
    fwd = functools.partial(tokens.evit_forward, model, keep=value, fuse=b.fuse)
    return Variant("evit", f"keep {value:g}" + (" +fused" if b.fuse else ""), value, model, fwd,
                   tokens=b._token_counts(fwd))


def build_tome(b: Variants, value: float) -> Variant:
    model = b.work
    fwd = functools.partial(tokens.tome_forward, model, r=int(value))
    return Variant("tome", f"r {int(value)}", value, model, fwd, tokens=b._token_counts(fwd))


def build_patch_dropout(b: Variants, value: float) -> Variant:
    model = tokens.with_patch_dropout(b.work, value)
    return Variant("patch-dropout", f"drop {value:g}", value, model, model,
                   tokens=tokens.patch_dropout_counts(model, value))


__all__ = ["Variant", "Variants"]
