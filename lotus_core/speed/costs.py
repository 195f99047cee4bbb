"""What running a model costs besides time: FLOPs, peak memory, parameters and checkpoint bytes.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add of every matmul, convolution and
attention product), plus the CSR products it does not see. Peak memory is the device's peak allocation during one
forward on CUDA; on the CPU it is tracked by a dispatch mode that adds up the bytes of every live tensor storage
the forward creates. Both count the model's own parameters and buffers on top.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

if TYPE_CHECKING:  # measure.py imports this module
    from .measure import Forward


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (Linux: MemAvailable; elsewhere 8 GiB assumed)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def count_flops(forward: Forward, x: torch.Tensor, model: nn.Module | None = None) -> int:
    """Floating-point operations of ``forward(x)`` (whole batch): torch's flop counter, plus the sparse
    CSR products of ``model``'s :class:`~lotus_core.speed.sparse.CSRLinear` layers, which it does not see."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    from .sparse import sparse_flops

    def cpu_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)  # QK^T and AV: torch's counter misses the CPU flash kernel

    custom = {}
    if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        custom[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = cpu_attention
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        forward(x)
    return int(counter.get_total_flops()) + (sparse_flops(model) if model is not None else 0)


class _LiveBytes(TorchDispatchMode):
    """Adds up the bytes of the tensor storages created under it while they are alive; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    weakref.finalize(storage, self._free, key)
                    self.peak = max(self.peak, self.now)
        return out


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers as they sit in memory (sparse tensors: their values and indices)."""
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.layout == torch.sparse_csr:
            total += sum(p.numel() * p.element_size() for p in (t.values(), t.crow_indices(), t.col_indices()))
        elif t.layout == torch.strided:
            total += t.numel() * t.element_size()
        else:  # semi-structured and other packed formats: what they report
            total += t.numel() * t.element_size() // 2
    return total


def peak_memory(forward: Forward, x: torch.Tensor, model: nn.Module) -> int:
    """Peak bytes of one ``forward(x)``: the model's state plus the peak of live activations."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        with torch.inference_mode():
            forward(x)
        torch.cuda.synchronize(x.device)
        return int(torch.cuda.max_memory_allocated(x.device) - base) + state_bytes(model)
    tracker = _LiveBytes()
    with torch.inference_mode(), tracker:
        forward(x)
    return tracker.peak + state_bytes(model)


def checkpoint_bytes(model: nn.Module) -> int:
    """Size in bytes of the model's state dict written as safetensors (what a download weighs); a sparse
    CSR weight is written as its three tensors (values, row pointers, column indices)."""
    from safetensors.torch import save

    state = {}
    for k, v in model.state_dict().items():
        if v.layout == torch.sparse_csr:
            for part, t in (("values", v.values()), ("crow", v.crow_indices()), ("col", v.col_indices())):
                state[f"{k}.{part}"] = t.detach().contiguous().cpu()
        elif v.layout == torch.strided:
            state[k] = v.detach().contiguous().cpu()
        else:
            state[k] = v.to_dense().detach().contiguous().cpu()
    return len(save(state))


def count_params(model: nn.Module) -> int:
    """Parameters of ``model`` (for sparse weights: the stored nonzeros)."""
    total = 0
    for p in model.parameters():
        total += p.values().numel() if p.layout == torch.sparse_csr else p.numel()
    return total
