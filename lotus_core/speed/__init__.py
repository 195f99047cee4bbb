"""Does sparsity buy speed? Each method's measured cost to run, beside its accuracy.

``METHODS`` is the one registry of what the Speed page, the ``speed`` command and the tests
enumerate: the dense reference; masked dense (zeros in dense kernels, what
``torch.nn.utils.prune`` gives); unstructured sparse CSR kernels; 2:4 semi-structured kernels
(CUDA); structural pruning of heads and MLP channels (Torch-Pruning); token reduction (EViT,
ToMe, and timm's PatchDropout as the random control). Each method names the family it belongs
to, which settings of a :class:`~lotus_core.speed.run.SpeedConfig` it reads, and its builder
(:mod:`lotus_core.speed.variants`).

Modules: measure.py (torch.utils.benchmark timing, load, batch size), costs.py (FLOPs, memory, bytes), sparse.py (CSR, 2:4),
structural.py (Torch-Pruning), tokens.py (EViT, ToMe, PatchDropout), export.py (safetensors +
ONNX), run.py (the stored experiment, the Pareto frontier, the best point within eps), accuracy.py (each
variant's stored accuracy), reliability.py (when a timing is not to be trusted), history.py (every take kept).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.errors import LotusError
from . import variants as v

FAMILIES = ("reference", "masked dense", "sparse kernels", "structural", "token reduction")


@dataclass(frozen=True)
class SpeedMethod:
    """A way of running a (pruned) model, and where its settings come from."""

    name: str
    family: str  # one of FAMILIES
    help: str
    settings: Callable  # settings(config) -> the values to measure (floats)
    build: Callable  # build(variants, value) -> Variant


METHODS: dict[str, SpeedMethod] = {
    "dense": SpeedMethod("dense", "reference", "the unpruned model", lambda c: (0.0,), v.build_dense),
    "masked": SpeedMethod("masked", "masked dense", "global magnitude mask, zeros in dense kernels",
                          lambda c: c.sparsities, v.build_masked),
    "csr": SpeedMethod("csr", "sparse kernels", "the masked block Linears as sparse CSR (torch.sparse.addmm)",
                       lambda c: c.sparsities, v.build_csr),
    "nm-2:4": SpeedMethod("nm-2:4", "sparse kernels", "2:4 semi-structured kernels (CUDA, compute capability >= 8.0)",
                          lambda c: (0.5,), v.build_nm),
    "heads": SpeedMethod("heads", "structural", "attention heads removed (Torch-Pruning)", lambda c: c.ratios,
                         v.build_heads),
    "channels": SpeedMethod("channels", "structural", "MLP hidden channels removed (Torch-Pruning)",
                            lambda c: c.ratios, v.build_channels),
    "evit": SpeedMethod("evit", "token reduction", "EViT: keep the tokens CLS attends to most",
                        lambda c: c.keep_rates, v.build_evit),
    "tome": SpeedMethod("tome", "token reduction", "ToMe: merge r similar tokens per block", lambda c: c.tome_r,
                        v.build_tome),
    "patch-dropout": SpeedMethod("patch-dropout", "token reduction", "timm PatchDropout: random tokens dropped (control)",
                                 lambda c: c.drops, v.build_patch_dropout),
}


def get_method(name: str) -> SpeedMethod:
    if name not in METHODS:
        raise LotusError(f"unknown speed method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "FAMILIES", "SpeedMethod", "get_method"]
