"""Pruning masks: one boolean tensor per pruned parameter, True = kept.

Keys are names from ``model.named_parameters()``. A mask checks its own invariants (boolean
tensors; names and shapes that match the model it is applied to) and knows its sparsity
(fraction of masked entries that are pruned, in [0, 1]). Saved as safetensors.

A method that also *changes* the kept weights (SparseGPT's reconstruction) returns its mask with
``weights``: the new values of the masked tensors, which :meth:`Mask.apply` and the sweep put in
place of the base weights. Other masks have ``weights = None``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .errors import LotusError, first_line


def apply_mask_(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned entries of ``model`` in place (``mask`` maps parameter name -> bool keep)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, keep in mask.items():
            if name not in params:
                raise LotusError(f"mask names parameter {name!r}, which the model does not have; use a mask made for this model")
            params[name].mul_(keep.to(params[name].device, params[name].dtype))


MAX_MASK_BYTES = 10 * 1024 * 1024  # an uploaded mask (10 MB = Streamlit's server.maxUploadSize); the CLI reads any size


class Mask(dict):
    """Parameter name -> bool tensor (True = kept)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None,
                 weights: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        self.weights = dict(weights) if weights is not None else None  # reconstructed values (SparseGPT) or None
        for name, t in (tensors or {}).items():
            if not isinstance(t, torch.Tensor) or t.dtype != torch.bool:
                raise LotusError(f"mask entry {name!r} is not a boolean tensor; build masks with lotus_core.pruning.prune")
            self[name] = t

    @classmethod
    def ones(cls, params: Mapping[str, torch.Tensor]) -> "Mask":
        """A mask that keeps everything in ``params``, on their device."""
        return cls({n: torch.ones(p.shape, dtype=torch.bool, device=p.device) for n, p in params.items()})

    def to(self, device: torch.device | str) -> "Mask":
        """This mask on ``device`` (itself when it is already there)."""
        if all(t.device == torch.device(device) for t in self.values()):
            return self
        return Mask({n: t.to(device) for n, t in self.items()})

    def numel(self) -> int:
        return sum(t.numel() for t in self.values())

    def num_pruned(self) -> int:
        return sum(int((~t).sum()) for t in self.values())

    @property
    def sparsity(self) -> float:
        """Fraction of all masked entries that are pruned."""
        n = self.numel()
        return self.num_pruned() / n if n else 0.0

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    def layer_sparsity(self) -> dict[str, float]:
        """Pruned fraction per parameter."""
        return {n: float((~t).sum()) / t.numel() for n, t in self.items()}

    def validate(self, model: nn.Module) -> None:
        """Raise LotusError unless every name exists in ``model`` with the same shape."""
        params = dict(model.named_parameters())
        for name, t in self.items():
            if name not in params:
                raise LotusError(f"mask names {name!r}, which this model does not have; use a mask made for this model")
            if tuple(params[name].shape) != tuple(t.shape):
                raise LotusError(f"mask {name!r} has shape {tuple(t.shape)} but the model's is "
                                 f"{tuple(params[name].shape)}; use a mask made for this model")

    def apply(self, model: nn.Module) -> nn.Module:
        """A pruned deep copy of ``model`` (pruned weights set to zero); ``model`` is untouched."""
        self.validate(model)
        pruned = copy.deepcopy(model)
        if self.weights is not None:
            params = dict(pruned.named_parameters())
            with torch.no_grad():
                for name, w in self.weights.items():
                    params[name].copy_(w)
        apply_mask_(pruned, self)
        return pruned

    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        return save({n: t.contiguous().cpu() for n, t in self.items()}, metadata={"lotus": "mask"})

    @classmethod
    def from_bytes(cls, data: bytes, max_bytes: int = MAX_MASK_BYTES) -> "Mask":
        """A mask from safetensors bytes (bool tensors, or uint8 holding only 0 and 1); at most ``max_bytes``."""
        from safetensors.torch import load

        if len(data) > max_bytes:
            raise LotusError(f"the mask file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB a mask "
                             "may have here; compare larger masks with `python -m lotus_core similarity`")
        try:
            tensors = load(bytes(data))
        except Exception as exc:  # safetensors raises several types for corrupt data
            msg = first_line(exc, 120)
            raise LotusError(f"not a safetensors mask ({msg}); save masks with --mask-out") from None
        if not tensors:
            raise LotusError("the mask file holds no tensors; save masks with --mask-out")
        for name, t in tensors.items():
            if t.dtype == torch.uint8 and bool(((t != 0) & (t != 1)).any()):
                raise LotusError(f"mask entry {name!r} holds values other than 0 and 1; save masks with --mask-out")
        return cls({n: t.bool() if t.dtype == torch.uint8 else t for n, t in tensors.items()})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Mask":
        path = Path(path)
        if not path.is_file():
            raise LotusError(f"mask file {path} does not exist; write one with `prune --mask-out FILE`")
        return cls.from_bytes(path.read_bytes(), max_bytes=max(MAX_MASK_BYTES, path.stat().st_size))
