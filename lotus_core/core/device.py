"""Where to compute, in which precision, and on how many threads.

bf16 autocast roughly doubles ViT inference throughput on CPUs with AVX-512 BF16 (or AMX)
and on CUDA GPUs; elsewhere evaluation stays in fp32. :func:`precision_used` says which of the
two an evaluation really gets, and that (not the precision asked for) goes into result keys.

The CPU thread count changes results (the order of floating-point reductions in matmuls: an LTH
round measured 88.00% on one thread count and 88.33% on another), so the CLI, the background worker
and the dashboard all compute on ``$LOTUS_THREADS`` threads (:func:`compute_threads`) and the count
is part of every result key. The default is a fixed :data:`DEFAULT_THREADS`, not the machine's core
count, so results computed with the defaults (the shipped ones, say) carry the same key on every
machine; set ``LOTUS_THREADS`` to the core count for speed, and results get keys of their own.
"""
from __future__ import annotations

import contextlib
import functools
import os

import torch


def default_device() -> torch.device:
    """The CUDA device when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when oneDNN reports native bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_available(device: torch.device) -> bool:
    """Whether bf16 autocast is fast on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_supports_bf16()


def precision_used(device: torch.device, bf16: bool = True) -> str:
    """The precision an evaluation on ``device`` actually runs in when bf16 is asked for (``bf16``) or not."""
    return "bf16" if bf16 and bf16_available(device) else "fp32"


THREADS_ENV = "LOTUS_THREADS"
DEFAULT_THREADS = 2  # the same on every machine (see the module docstring); the development machine's cores
MAX_THREADS = 1024


def compute_threads() -> int:
    """Threads for training and evaluation: ``$LOTUS_THREADS``, default :data:`DEFAULT_THREADS`.

    Raises :class:`~lotus_core.core.errors.LotusError` when the variable is not a whole number in 1..1024.
    """
    from .errors import LotusError

    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return DEFAULT_THREADS
    if not text.isdigit() or not 1 <= int(text) <= MAX_THREADS:
        raise LotusError(f"{THREADS_ENV}={text!r} is not a thread count; set a whole number from 1 to {MAX_THREADS} "
                         f"or unset it (default {DEFAULT_THREADS})")
    return int(text)


def use_compute_threads() -> int:
    """Set torch's intra-op threads to :func:`compute_threads` (CLI, worker and dashboard alike); returns it."""
    n = compute_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when it is fast there and ``enabled``; otherwise a no-op."""
    if enabled and bf16_available(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
