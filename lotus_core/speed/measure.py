"""How long running a model takes: latency, the speed-up over a reference, the machine's load, the best batch size.

Latency comes from ``torch.utils.benchmark``. :func:`interleaved` is what the speed experiment
uses: every variant is timed once per round, in the same order each round (dense, A, B, dense,
A, B, ...), so that a change in the machine's load hits all of them alike; :func:`ratio_interval`
turns the per-round times into the median speed-up over rounds with a bootstrap interval.
:func:`time_forward` (one variant, ``blocked_autorange``) serves the batch-size search.
:func:`machine_load` records how busy the machine was (the load average against its cores). FLOPs, memory,
parameters and bytes are in :mod:`lotus_core.speed.costs`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from ..core.errors import LotusError
from .costs import available_memory, peak_memory, state_bytes

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Timing:
    """Latency of one batch, from torch.utils.benchmark."""

    median_s: float  # median seconds per call (one call = one batch)
    iqr_s: float  # interquartile range of the per-block means, seconds
    blocks: int  # measured blocks
    threads: int  # torch intra-op threads during the measurement


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = ("wall", "cpu")
MAX_RUN_TIME = 60.0  # seconds: the most a measurement may spend timing one configuration at one batch size


def check_run_time(seconds: float) -> None:
    """Refuse a timing budget that is not a finite number of seconds in (0, MAX_RUN_TIME] (NaN or inf would
    make torch.utils.benchmark time forever)."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_RUN_TIME):
        raise LotusError(f"min_run_time (the timing budget per configuration) must be a number of seconds in "
                         f"(0, {MAX_RUN_TIME:g}] (got {seconds!r}); give for example 0.5")


def _benchmark():
    """``torch.utils.benchmark``, imported without the warning its import logs on a machine with a CUDA_HOME but
    no CUDA runtime ("No CUDA runtime is found", from torch.utils.cpp_extension): that line is noise before a
    one-line refusal. The logger's level is restored at once."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        log.setLevel(level)
    return benchmark


def _clock(clock: str, device: torch.device) -> Callable[[], float]:
    """The timer function of ``clock`` (see :func:`time_forward`): torch.utils.benchmark's wall timer (it waits
    for the accelerator first) or this process's CPU time."""
    if clock not in CLOCKS:
        raise LotusError(f"unknown clock {clock!r}; choose one of {', '.join(CLOCKS)}")
    if clock == "cpu" and device.type != "cpu":
        raise LotusError("the cpu clock times CPU work; measure GPU runs with the wall clock")
    return time.process_time if clock == "cpu" else _benchmark().timer


def _timer(forward: Forward, x: torch.Tensor, threads: int, clock: str):
    """A torch.utils.benchmark Timer of ``forward(x)`` on ``clock``."""
    return _benchmark().Timer("forward(x)", globals={"forward": forward, "x": x}, num_threads=threads,
                              timer=_clock(clock, x.device))


@contextlib.contextmanager
def timing_threads(threads: int) -> Iterator[None]:
    """Time on ``threads`` intra-op threads. torch's thread count is process-wide, so it is left alone when it
    already is ``threads`` (every measurement the dashboard and its worker start: their SpeedConfig takes the
    process's count), and changed for the measurement only when a run asks for another count, which only a
    process doing nothing else does (``python -m lotus_core speed --threads N``)."""
    previous = torch.get_num_threads()
    if threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_forward(forward: Forward, x: torch.Tensor, threads: int, min_run_time: float = 0.5,
                 warmup: int = 2, clock: str = "wall") -> Timing:
    """Median and IQR of ``forward(x)`` under inference mode with ``threads`` intra-op threads.

    Args:
        min_run_time: seconds spent in measured blocks (after the ``warmup`` calls).
        warmup: untimed calls first (allocations, oneDNN kernel selection, lazy CUDA init).
        clock: ``"wall"`` (latency, torch.utils.benchmark's default timer) or ``"cpu"`` (this process's
            CPU time, ``time.process_time``: on a machine shared with other jobs it leaves out the time spent
            waiting for a core; with one thread it is the compute latency on one free core). CPU only.
    """
    check_run_time(min_run_time)
    timer = _timer(forward, x, threads, clock)
    with timing_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            forward(x)
        _sync(x.device)
        m = timer.blocked_autorange(min_run_time=min_run_time)
    return Timing(float(m.median), float(m.iqr), len(m.times), threads)


def interleaved(forwards: dict[str, Forward], x: torch.Tensor, threads: int, rounds: int, min_run_time: float,
                clock: str = "wall", warmup: int = 2, between: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of every forward in each of ``rounds`` rounds, timed in turn within each round.

    Each forward is timed once per round, in the order given (put the reference first: dense, A, B, dense, A,
    B, ...), so that a change of the machine's load during the measurement falls on all of them alike and a
    ratio taken within a round cancels it. One timed slice is ``number`` calls under the standard library's
    ``timeit.Timer`` (garbage collection off while timing) on torch.utils.benchmark's clock, with ``number``
    chosen once per forward so that a slice lasts about ``min_run_time / rounds`` seconds (at least one call).
    (torch's own ``Timer.timeit`` makes two untimed calls before every slice: with one-call slices of a large
    batch it would triple the time a measurement takes.)

    Args:
        forwards: name -> forward, timed in this order every round.
        min_run_time: seconds of timed calls per forward over all rounds.
        between: called after each round (e.g. a run's cancellation check).

    Returns:
        name -> the ``rounds`` per-call times in seconds, in round order.
    """
    check_run_time(min_run_time)
    if rounds < 1:
        raise LotusError(f"an interleaved measurement needs at least one round (got {rounds})")
    import timeit

    tick = _clock(clock, x.device)
    timers = {name: timeit.Timer(functools.partial(f, x), timer=tick) for name, f in forwards.items()}
    slice_s = min_run_time / rounds
    with timing_threads(threads):
        with torch.inference_mode():
            number = {}
            for name, f in forwards.items():
                for _ in range(warmup):
                    f(x)
                _sync(x.device)
                once = timers[name].timeit(1)  # a first estimate of one call
                number[name] = max(1, int(slice_s / max(once, 1e-9)))
            times: dict[str, list[float]] = {name: [] for name in forwards}
            for _ in range(rounds):
                for name, timer in timers.items():
                    times[name].append(timer.timeit(number[name]) / number[name])
                if between is not None:
                    between()
    return times


@dataclass(frozen=True)
class Ratio:
    """The speed-up of a variant over the reference from interleaved rounds (see :func:`ratio_interval`)."""

    median: float  # median over rounds of reference time / variant time
    low: float  # lower end of the interval
    high: float  # upper end of the interval
    rounds: int  # rounds it is computed from

    @property
    def spread(self) -> float:
        """The interval's width relative to the median (0.1: the interval spans 10% of the speed-up)."""
        return (self.high - self.low) / self.median


CONFIDENCE = 0.95  # of the speed-up's interval


def ratio_interval(reference: list[float], times: list[float], confidence: float = CONFIDENCE,
                   seed: int = 0) -> Ratio:
    """Speed-up of a variant over the reference timed in the same rounds.

    Each round gives one ratio ``reference[i] / times[i]`` (both measured within seconds of each other, so a
    load change cancels); the speed-up is their median, and its interval the percentile bootstrap interval of
    that median (``scipy.stats.bootstrap``, 2,000 seeded resamples of the rounds). The reference itself gives
    exactly 1 with the interval [1, 1].
    """
    import numpy as np
    from scipy import stats

    if len(reference) != len(times) or not times:
        raise LotusError("a speed-up needs the reference and the variant timed in the same rounds")
    ratios = np.asarray(reference, dtype=float) / np.asarray(times, dtype=float)
    median = float(np.median(ratios))
    if len(ratios) < 2 or np.all(ratios == ratios[0]):
        return Ratio(median, float(ratios.min()), float(ratios.max()), len(ratios))
    ci = stats.bootstrap((ratios,), np.median, confidence_level=confidence, n_resamples=2000, method="percentile",
                         random_state=np.random.default_rng(seed)).confidence_interval
    return Ratio(median, float(ci.low), float(ci.high), len(ratios))


@dataclass(frozen=True)
class Load:
    """How busy the machine is: the 1-minute load average (runnable processes) against the cores this process may
    use. Above the cores, other work competes for them and a timing is not to be trusted."""

    load: float | None  # 1-minute load average (None where the system does not report one)
    cores: int  # cores available to this process

    @property
    def busy(self) -> bool:
        return self.load is not None and self.load > self.cores


def machine_load() -> Load:
    """The machine's load now (``os.getloadavg``; the cores from the process's CPU affinity)."""
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        load = None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return Load(load, cores)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; elsewhere what the platform reports)."""
    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return name or platform.processor() or platform.machine()


@dataclass(frozen=True)
class BatchSearch:
    """The device's best batch size: the one with the most images/s among those tried, by doubling."""

    best: int  # batch size with the highest measured images/s
    trace: tuple[tuple[int, float], ...]  # (batch size, images/s) in the order tried
    stopped: str  # why the search ended, in words

    def to_dict(self) -> dict:
        return {"best": self.best, "trace": [list(t) for t in self.trace], "stopped": self.stopped}


def search_batch_size(throughput: Callable[[int], float | None], limit: int = 1024, gain: float = 1.03) -> BatchSearch:
    """Batch sizes 1, 2, 4, ... up to ``limit``, each measured by ``throughput(batch) -> images/s`` (None: it does
    not fit in memory), until one no longer improves on the best so far by ``gain`` (3%: past the knee, larger
    batches only add latency and memory); the best is the size with the most images/s among those measured."""
    if limit < 1:
        raise LotusError(f"the batch-size search needs a limit of at least 1 (got {limit})")
    trace: list[tuple[int, float]] = []
    bs, stopped = 1, f"reached the limit of {limit}"
    while bs <= limit:
        ips = throughput(bs)
        if ips is None:
            stopped = f"batch {bs} does not fit in memory"
            break
        best_ips = max((t[1] for t in trace), default=None)
        trace.append((bs, float(ips)))
        if best_ips is not None and ips < best_ips * gain:
            stopped = f"batch {bs} gave less than {100 * (gain - 1):.0f}% more images/s than the best smaller one"
            break
        bs *= 2
    if not trace:
        raise LotusError("not even one image per batch fits in memory on this device")
    return BatchSearch(max(trace, key=lambda t: t[1])[0], tuple(trace), stopped)


def best_batch_size(forward: Forward, make_input: Callable[[int], torch.Tensor], model: nn.Module, threads: int,
                    min_run_time: float = 0.2, clock: str = "wall", limit: int | None = None) -> BatchSearch:
    """:func:`search_batch_size` of ``forward`` timed by :func:`time_forward` on ``make_input(batch)``.

    The largest size tried is ``limit`` (default 1024 on the CPU, 8192 on a GPU), and on the CPU also what half of
    the memory available now holds at one image's activations (measured at batch 1); on a GPU a size that
    runs out of memory ends the search.
    """
    x1 = make_input(1)
    cuda = x1.device.type == "cuda"
    if limit is None:
        limit = 8192 if cuda else 1024
        if not cuda:
            per_image = max(1, peak_memory(forward, x1, model) - state_bytes(model))
            limit = max(1, min(limit, available_memory() // 2 // per_image))

    def throughput(bs: int) -> float | None:
        try:
            timing = time_forward(forward, make_input(bs), threads, min_run_time, clock=clock)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return None
        return bs / timing.median_s

    return search_batch_size(throughput, limit)


def device_name(device: torch.device) -> str:
    """A readable description of ``device``: the GPU's name, or the CPU's model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


__all__ = ["CLOCKS", "MAX_RUN_TIME", "CONFIDENCE", "Timing", "time_forward", "check_run_time", "interleaved", "Ratio",
           "ratio_interval", "Load", "machine_load", "cpu_model", "BatchSearch", "search_batch_size", "best_batch_size",
           "device_name", "Forward"]
