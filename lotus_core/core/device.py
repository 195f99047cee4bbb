"""Where to compute, and in which precision.

bf16 autocast roughly doubles ViT inference throughput on CPUs with AVX-512 BF16 (or AMX)
and on CUDA GPUs; elsewhere evaluation stays in fp32.
"""
from __future__ import annotations

import contextlib
import functools

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


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when it is fast there and ``enabled``; otherwise a no-op."""
    if enabled and bf16_available(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
