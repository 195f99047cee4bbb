"""SparseGPT: layer-wise optimal-brain-surgeon pruning with the weight update, column block by block.

"SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot" (Frantar & Alistarh,
ICML 2023). For a Linear layer with weight W (out, in) and calibration inputs X (tokens, in),
the layer-wise problem is min ||W X^T - W' X^T||^2 over sparse W'. Its Hessian is
H = 2 X^T X (+ dampening ``damp * mean(diag H)`` on the diagonal). Columns are processed left
to right: pruning column j sets the chosen entries to zero and spreads their error
``w_j / [H^-1]_jj`` over the columns not yet processed through row j of the upper Cholesky
factor of H^-1 (Algorithm 1 of the paper: the OBS update, computed lazily one block of
``blocksize`` columns at a time). Which entries go is decided once per block of columns
("adaptive mask selection") by the OBS saliency w^2 / [H^-1]_jj^2, or, for N:M, per group of M
columns, keeping the N most salient in every row.

Layers are pruned in forward order, one transformer block at a time, each from the inputs that
the already pruned blocks produce (the paper's sequential scheme); every scoped layer gets the
same sparsity (exactly ``round(sparsity * numel)`` pruned entries). The mask carries the
reconstructed weights (:attr:`Mask.weights`). Calibration: the same training images as Wanda.
Deliberate deviations from IST-DASLab/sparsegpt ``sparsegpt.py`` (``fasterprune``): the layer's exact
count is spread over its blocks, where the published code prunes one extra weight per block of
columns (``<=`` its threshold), and the solve is in float64; compared on identical inputs in
docs/audit.md.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import LotusError
from .calibration import input_stats
from ..core.mask import Mask
from .nm import NMOptions, check_nm
from .ranking import MaskFn, num_to_prune, ranks

DAMP = 0.01  # dampening: fraction of the mean Hessian diagonal added to it (the paper's 1%)
BLOCKSIZE = 128  # columns per lazy-update block (the paper's Bs = 128)


@dataclass(frozen=True)
class SparseGPTOptions:
    """SparseGPT's calibration and solver."""

    calib_size: int = 128  # training images whose layer inputs give the Hessians (as wanda's)
    damp: float = DAMP  # sparsegpt: dampening, the fraction of the mean Hessian diagonal added to it
    blocksize: int = BLOCKSIZE  # sparsegpt: columns per lazy-update block


@dataclass(frozen=True)
class SparseGPTNMOptions(NMOptions, SparseGPTOptions):
    """SparseGPT with an N:M pattern: its sparsity is fixed at 1 - N/M."""


def hessians(model: nn.Module, names: list[str], calib: torch.Tensor) -> dict[str, torch.Tensor]:
    """H = 2 X^T X (summed over all calibration tokens, float64) for the input X of each layer in ``names``.

    SparseGPT is invariant to H's scale (the dampening is relative, the update uses ratios of
    H^-1 entries), so no division by the token count is needed.
    """
    return {n: 2.0 * h for n, h in input_stats(model, names, calib, lambda x: x.double().T @ x.double()).items()}


@torch.no_grad()
def sparsegpt_layer(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float = 0.0, n: int = 0, m: int = 0,
                    blocksize: int = BLOCKSIZE, damp: float = DAMP) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune one layer: its reconstructed weight (pruned entries exactly 0) and its keep-mask.

    Args:
        weight: (out, in) weight, not modified.
        hessian: (in, in) Hessian 2 X^T X of the layer-wise reconstruction loss.
        sparsity: fraction of entries pruned (unstructured; exactly ``round(sparsity * numel)``).
        n, m: with m > 0, N:M instead: in every group of m consecutive inputs of a row, n are kept.
        blocksize: columns per lazy-update block (a multiple of m for N:M).
        damp: fraction of the mean diagonal of H added to its diagonal.
    """
    rows, cols = weight.shape
    if m and blocksize % m:
        raise LotusError(f"SparseGPT block size {blocksize} is not a multiple of M={m}; choose e.g. 128")
    if blocksize < 1 or damp <= 0:
        raise LotusError(f"SparseGPT needs block size >= 1 and dampening > 0 (got {blocksize}, {damp})")
    W = weight.detach().double().clone()
    H = hessian.double().clone()
    dead = torch.diag(H) == 0  # inputs that are always zero: any value of their column is equally good
    H[dead, dead] = 1.0
    H += damp * torch.diag(H).mean() * torch.eye(cols, dtype=H.dtype)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)  # (in, in)
    pruned = torch.zeros(rows, cols, dtype=torch.bool)
    goal, done = (0, 0) if m else (num_to_prune(sparsity, rows * cols), 0)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]  # (out, B), (B, B)
        d = torch.diag(Hinv1)  # (B,)
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        P1 = torch.zeros_like(W1, dtype=torch.bool)
        if not m:  # this block's share of the layer's count, chosen by saliency at the block's start
            k = round(goal * i2 / cols) - done
            P1 = ranks((W1 ** 2 / d[None, :] ** 2).reshape(-1)).reshape(W1.shape) < k
            done += k
        for i in range(i2 - i1):
            if m and i % m == 0:  # N:M: the m - n least salient of this group in every row
                sal = W1[:, i:i + m] ** 2 / d[None, i:i + m] ** 2  # (out, m)
                drop = torch.argsort(sal, dim=1, stable=True)[:, : m - n]
                P1[:, i:i + m].scatter_(1, drop, True)
            w = W1[:, i]
            q = torch.where(P1[:, i], torch.zeros_like(w), w)
            Q1[:, i] = q
            err = (w - q) / d[i]  # (out,)
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = P1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W.to(weight.dtype), ~pruned


def _groups(names: list[str]) -> list[list[str]]:
    """Scoped weights grouped by transformer block (forward order); anything else (the head) last."""
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "blocks" else "rest"
        groups.setdefault(key, []).append(name)
    return [groups[k] for k in sorted(groups, key=lambda k: (k == "rest", int(k.split(".")[1]) if k != "rest" else 0))]


def sparsegpt_mask(model: nn.Module, names: list[str], calib: torch.Tensor, sparsity: float = 0.0, n: int = 0,
                   m: int = 0, blocksize: int = BLOCKSIZE, damp: float = DAMP) -> Mask:
    """SparseGPT over ``names`` of ``model`` (not modified): the keep-mask with the reconstructed weights."""
    work = copy.deepcopy(model).eval()
    params = dict(work.named_parameters())
    keep, weights = {}, {}
    for group in _groups(names):
        H = hessians(work, group, calib)  # inputs from the blocks pruned so far
        for name in group:
            w, k = sparsegpt_layer(params[name], H[name], sparsity, n, m, blocksize, damp)
            with torch.no_grad():
                params[name].copy_(w)
            keep[name], weights[name] = k, w
    return Mask({name: keep[name] for name in names}, weights={name: weights[name] for name in names})


def _prepare(params, options, nm: bool) -> MaskFn:
    if options.calib is None or options.model is None:
        raise LotusError("sparsegpt needs a calibration batch; pass calibration images (default 128 training images)")
    own = options.own
    if nm:
        check_nm(params, own.n, own.m)
    cache: dict[float, Mask] = {}

    def make(sparsity: float) -> Mask:
        key = 0.0 if nm else sparsity
        if key not in cache:
            cache[key] = sparsegpt_mask(options.model, list(params), options.calib, sparsity,
                                        own.n if nm else 0, own.m if nm else 0, own.blocksize, own.damp)
        return cache[key]

    return make


def sparsegpt(params, options) -> MaskFn:
    """Unstructured SparseGPT at any sparsity (each level is its own reconstruction, cached)."""
    return _prepare(params, options, nm=False)


def sparsegpt_nm(params, options) -> MaskFn:
    """N:M SparseGPT (2:4 by default): sparsity 1 - N/M whatever is asked."""
    return _prepare(params, options, nm=True)
