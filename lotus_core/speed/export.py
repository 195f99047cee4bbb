"""Export a structurally pruned model: what a user takes away is smaller on disk and faster, not a mask.

- safetensors with the pruned architecture in the header (``lotus_arch``: ``num_heads``,
  ``attn_head_dim``, ``mlp_ratio`` beside the base model's timm kwargs), so
  ``lotus_core.models.loading.load_model(path)`` rebuilds it; with plain timm:
  ``timm.create_model(arch["model_name"], num_heads=..., mlp_ratio=..., attn_layer=head_width_attention(d))``.
- ONNX (``torch.onnx.export``, the TorchScript exporter, opset 17, dynamic batch), checked with
  onnxruntime: its outputs on a batch of test inputs must match the torch model's to ``atol``.
"""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.errors import LotusError


@dataclass(frozen=True)
class Exported:
    """A structurally pruned model as files."""

    safetensors: bytes  # state dict with the pruned architecture in the header
    onnx: bytes  # ONNX graph with weights
    arch: dict  # the pruned architecture (lotus_arch)
    onnx_max_abs_diff: float  # largest |onnxruntime - torch| over the check batch's logits


def safetensors_bytes(model: nn.Module, extra: dict[str, str] | None = None) -> bytes:
    """The model's state dict as safetensors, with ``lotus_arch`` (and ``extra``) in the header."""
    from safetensors.torch import save

    meta = {"lotus_arch": json.dumps(model.lotus_arch), **(extra or {})}
    return save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, metadata=meta)


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """``model`` exported to ONNX (opset 17) with a dynamic batch dimension."""
    buf = io.BytesIO()
    model = model.cpu().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about timm's shape asserts
        torch.onnx.export(model, (example.cpu(),), buf, dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    return buf.getvalue()


def onnx_max_diff(onnx: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and torch's logits on ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.cpu().numpy()})[0]
    with torch.inference_mode():
        want = model.cpu().eval()(x.cpu()).numpy()
    return float(np.abs(got - want).max())


def export(model: nn.Module, example: torch.Tensor, atol: float = 1e-4, extra: dict[str, str] | None = None) -> Exported:
    """safetensors and checked ONNX of a (structurally pruned) timm model. Raises LotusError when
    onnxruntime disagrees with torch by more than ``atol``."""
    if not hasattr(model, "lotus_arch"):
        raise LotusError("the model carries no architecture (lotus_arch); prune it with lotus_core.speed.structural")
    onnx = onnx_bytes(model, example[:1])
    diff = onnx_max_diff(onnx, model, example)
    if diff > atol:
        raise LotusError(f"the ONNX export differs from the torch model by {diff:.2g} (> {atol:g}); it is not exported")
    return Exported(safetensors_bytes(model, extra), onnx, dict(model.lotus_arch), diff)


def write(exported: Exported, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.onnx`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.safetensors", out / f"{stem}.onnx"]
    paths[0].write_bytes(exported.safetensors)
    paths[1].write_bytes(exported.onnx)
    return paths


__all__ = ["Exported", "export", "write", "safetensors_bytes", "onnx_bytes", "onnx_max_diff"]
