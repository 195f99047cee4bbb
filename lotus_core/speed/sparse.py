"""Sparse kernels for pruned weights: CSR linears on the CPU, 2:4 semi-structured on CUDA.

An unstructured mask leaves the weight's shape alone, so dense kernels do the same work on
zeros (``torch.nn.utils.prune`` gives exactly that: the "masked" method). Stored as sparse CSR
(``Tensor.to_sparse_csr``) a Linear multiplies only its nonzeros (``torch.sparse.addmm``); it
pays for irregular memory access, so on a CPU it breaks even only at high sparsity.
2:4 semi-structured sparsity (two nonzeros in every four consecutive weights of a row) runs on
the sparse tensor cores of NVIDIA GPUs of compute capability 8.0 and later
(``torch.sparse.to_sparse_semi_structured``; Mishra et al., "Accelerating Sparse Deep Neural
Networks", 2021).
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from ..core.mask import Mask


class CSRLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` held as a sparse CSR tensor (only the nonzeros are multiplied)."""

    def __init__(self, linear: nn.Linear, keep: torch.Tensor | None = None):
        super().__init__()
        weight = linear.weight.detach() * (keep.to(linear.weight.dtype) if keep is not None else 1)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            self.weight = nn.Parameter(weight.to_sparse_csr(), requires_grad=False)  # (out, in), CSR
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.rows = 0  # rows of the last input (for FLOP counting: torch's counter skips sparse products)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # (B*N, in)
        self.rows = flat.shape[0]
        if self.bias is None:
            out = torch.sparse.mm(self.weight, flat.T)  # (out, B*N)
        else:
            out = torch.sparse.addmm(self.bias.unsqueeze(1).expand(-1, flat.shape[0]), self.weight, flat.T)
        return out.T.reshape(*x.shape[:-1], self.out_features)


def sparse_flops(model: nn.Module) -> int:
    """FLOPs of the CSR products of the last forward: 2 per stored nonzero per input row."""
    return sum(2 * m.weight.values().numel() * m.rows for m in model.modules() if isinstance(m, CSRLinear))


def _replace_linears(model: nn.Module, names: list[str], make) -> nn.Module:
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(name, getattr(parent, child)))
    return model


def masked_linear_names(model: nn.Module, mask: Mask) -> list[str]:
    """The Linear modules whose ``weight`` the mask prunes."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and f"{n}.weight" in mask]


def to_csr(model: nn.Module, mask: Mask) -> nn.Module:
    """A copy of ``model`` with the mask applied and every masked Linear as a :class:`CSRLinear`."""
    mask.validate(model)
    out = copy.deepcopy(model)
    return _replace_linears(out, masked_linear_names(out, mask), lambda n, lin: CSRLinear(lin, mask[f"{n}.weight"]))


def semi_structured_unavailable(device: torch.device, model: nn.Module | None = None,
                                mask: Mask | None = None) -> str | None:
    """Why 2:4 semi-structured kernels cannot run here (None when they can).

    They need CUDA, compute capability >= 8.0, and fp16 weights whose rows are a multiple of 32
    and columns a multiple of 64 (cuSPARSELt/CUTLASS tile constraints).
    """
    if device.type != "cuda":
        gpu = "a CUDA device is present but not selected" if torch.cuda.is_available() else "this machine has no CUDA GPU"
        return f"2:4 semi-structured kernels need an NVIDIA GPU of compute capability >= 8.0; {gpu} (device {device.type})"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return (f"2:4 semi-structured kernels need compute capability >= 8.0; {torch.cuda.get_device_name(device)} "
                f"has {major}.{minor}")
    if model is not None and mask is not None:
        for name in masked_linear_names(model, mask):
            out_f, in_f = model.get_submodule(name).weight.shape
            if out_f % 32 or in_f % 64:
                return (f"2:4 semi-structured kernels need Linear weights of shape (32k, 64k); {name} is "
                        f"({out_f}, {in_f})")
    return None


def to_semi_structured(model: nn.Module, mask: Mask) -> nn.Module:
    """A half-precision copy of ``model`` (on its device) with the 2:4 mask applied and every masked Linear's
    weight in the semi-structured sparse format. Check :func:`semi_structured_unavailable` first."""
    from torch.sparse import to_sparse_semi_structured

    out = mask.apply(model).half()
    for name in masked_linear_names(out, mask):
        lin = out.get_submodule(name)
        lin.weight = nn.Parameter(to_sparse_semi_structured(lin.weight.detach()), requires_grad=False)
    return out


__all__ = ["CSRLinear", "sparse_flops", "to_csr", "to_semi_structured", "semi_structured_unavailable", "masked_linear_names"]
