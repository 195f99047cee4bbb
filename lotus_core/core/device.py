"""Where to compute, in which precision, and on how many threads.

The device is chosen once (``--device cpu|cuda|cuda:N``, the sidebar shows it): the shared
model is placed there when its Context is opened, and nothing afterwards moves it. Every
function that needs a device asks the model's parameters (:func:`model_device`) and creates
masks, scores and fills there; predictions come back on the CPU for the store.

bf16 autocast roughly doubles ViT inference throughput on CPUs with AVX-512 BF16 (or AMX)
and on CUDA GPUs; elsewhere evaluation stays in fp32. :func:`precision_used` says which of the
two an evaluation really gets, and that (not the precision asked for) goes into result keys.

The CPU thread count changes results (the order of floating-point reductions in matmuls: an LTH
round measured 88.00% on one thread count and 88.33% on another), so the CLI, the background worker
and the dashboard all compute on ``$LOTUS_THREADS`` threads (:func:`compute_threads`) and the count
is part of every result key. The default is a fixed :data:`DEFAULT_THREADS`, not the machine's core
count, so results computed with the defaults (the shipped ones, say) carry the same key on every
machine; set ``LOTUS_THREADS`` to the core count for speed, and results get keys of their own.

One CPU budget per host (:func:`cpu_slot`): torch's intra-op thread count is process-global and part of every
result key, so it is never changed per session or per job (:func:`use_compute_threads` is the one place that
sets it, to the same count for every thread of a process; two threads of one process cannot compute on
different counts, and LOTUS does not try). What is shared instead is *when* work runs: every computation
(dashboard sessions' script threads, the background worker, local executor and Ray units, CLI runs) holds one
of the host's ``cores // threads`` slots while it computes, so concurrent work takes turns on the cores
instead of oversubscribing them (at a load average of about 9 a 32-image forward at 2 threads took 2,459 ms
against 249 ms at 1 thread: torch's thread pool stalls when it has more runnable threads than cores). An
interactive request is served before background work (:func:`background_work`: the worker's jobs): background
work takes a slot only while no interactive request holds or waits for one. The slots are ``flock`` locks on
files in :func:`~lotus_core.core.paths.cpu_budget_dir` (one per host), so a killed process frees its slot at once.
"""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from .errors import LotusError
from .paths import cpu_budget_dir
from .text import count_text


def default_device() -> torch.device:
    """The CUDA device when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | None) -> torch.device:
    """``None``/``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked against this machine."""
    if name in (None, "", "auto"):
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LotusError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise LotusError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LotusError(f"device {name!r} asked for but this machine has no CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LotusError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s); "
                             f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """A short human name, e.g. ``"cuda:0 (NVIDIA H200)"`` or ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({count_text(torch.get_num_threads(), 'thread')})"


def eval_batch_size(device: torch.device, input_size: tuple[int, ...]) -> int:
    """Evaluation batch sized to the device and the input: 500 images of 28 px on the CPU,
    scaled down with the pixel count (16 images of 224 px), and 8x that on a GPU, whose
    throughput keeps growing with the batch where a CPU's does not."""
    pixels = int(input_size[-1]) * int(input_size[-2])
    per_cpu = max(16, min(500, 500 * 28 * 28 // pixels))
    return per_cpu * 8 if device.type == "cuda" else per_cpu


def decision_batch_size(device: torch.device, input_size: tuple[int, ...]) -> int:
    """The largest batch of an early decision: a fifth of :func:`eval_batch_size` (at least 16). Smaller
    batches stop nearer where the answer became certain, and on this project's 2-core CPU 100 images of 28 px
    a batch also run faster than 500 (3,706 against 2,948 images/s in bf16, 2,166 against 1,831 in fp32)."""
    return max(16, eval_batch_size(device, input_size) // 5)


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


# ------------------------------------------------------------------------------------------ the CPU budget
BUDGET_ENV = "LOTUS_CPU_BUDGET"  # "off": no budget (benchmarks measure the oversubscribed baseline with it)
PRIORITY_ENV = "LOTUS_PRIORITY"  # "background": this process's work yields to interactive requests
_POLL_S = 0.02  # how often a waiting request looks for a free slot
_background: contextvars.ContextVar[bool | None] = contextvars.ContextVar("lotus_background", default=None)
_held = threading.local()  # depth of cpu_slot() in this thread: a nested one holds nothing more


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def budget_slots() -> int:
    """How many computations may run at once on this host: ``cores // $LOTUS_THREADS``, at least 1
    (a 2-core machine at the default 2 threads runs one at a time)."""
    return max(1, host_cores() // compute_threads())


def is_background() -> bool:
    """Whether work in this context is background work (:func:`background_work`, or ``$LOTUS_PRIORITY``)."""
    flag = _background.get()
    return os.environ.get(PRIORITY_ENV, "").strip().lower() == "background" if flag is None else flag


@contextlib.contextmanager
def background_work() -> Iterator[None]:
    """Mark the work inside as background (the worker's jobs): it yields slots to interactive requests.
    A context variable, so it marks only this thread's (or task's) work, never another session's."""
    reset = _background.set(True)
    try:
        yield
    finally:
        _background.reset(reset)


def _try_lock(path: Path, mode: int) -> int | None:
    """An fd holding ``mode`` (LOCK_EX / LOCK_SH) on ``path``, or None when another holder prevents it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the last fd of the open file frees its flock


@contextlib.contextmanager
def cpu_slot() -> Iterator[None]:
    """Hold one of the host's :func:`budget_slots` while computing inside (waits until one is free).

    Interactive requests mark themselves (a shared lock on ``interactive``) from the moment they wait, and
    background work (:func:`is_background`) takes a slot only while no interactive request holds or waits for
    one. Nested calls in one thread hold the outer slot only. ``$LOTUS_CPU_BUDGET=off`` disables the budget.
    """
    if getattr(_held, "depth", 0) or os.environ.get(BUDGET_ENV, "").strip().lower() == "off":
        _held.depth = getattr(_held, "depth", 0) + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    folder, background = cpu_budget_dir(), is_background()
    mark = slot = None
    try:
        while not background and mark is None:  # a background probe holds it exclusively for an instant only
            mark = _try_lock(folder / "interactive", fcntl.LOCK_SH)
            if mark is None:
                time.sleep(_POLL_S)
        while slot is None:
            if background:  # an interactive request holding or waiting for a slot goes first
                probe = _try_lock(folder / "interactive", fcntl.LOCK_EX)
                _release(probe)
                if probe is None:
                    time.sleep(_POLL_S)
                    continue
            for i in range(budget_slots()):
                slot = _try_lock(folder / f"slot-{i}", fcntl.LOCK_EX)
                if slot is not None:
                    break
            else:
                time.sleep(_POLL_S)
        _held.depth = 1
        yield
    finally:
        _held.depth = 0
        _release(slot)
        _release(mark)
