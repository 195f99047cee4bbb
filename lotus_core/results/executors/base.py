"""What every executor is: its configuration (:class:`ExecutorConfig`, from flags or the worker's environment),
the :class:`Executor` that opens a :class:`Pool` of one experiment's units, the :class:`Batch` of their outcomes
in completion order, and one unit's :class:`Outcome` (see :mod:`lotus_core.results.executors`)."""
from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ...core.errors import LotusError


@dataclass(frozen=True)
class ExecutorConfig:
    """Where an experiment's units run (never part of a result's key)."""

    kind: str = "local"  # local | ray (keys of EXECUTORS)
    address: str | None = None  # ray: None starts a local cluster; "auto", "HOST:6379" or "ray://HOST:10001" joins one
    gpus_per_task: float = 0.0  # ray: GPUs per unit (a fraction packs several units on one GPU)
    cpus_per_task: float | None = None  # ray: CPUs per unit (None: the threads a unit computes on, $LOTUS_THREADS)
    max_retries: int = 2  # ray: re-runs of a unit whose worker process died, before it counts as failed

    def check(self) -> None:
        """Refuse a configuration no executor can run, with one LotusError line."""
        from . import EXECUTORS  # the registry (executors/__init__.py) imports this module

        if self.kind not in EXECUTORS:
            raise LotusError(f"unknown executor {self.kind!r}; choose one of {', '.join(EXECUTORS)}")
        if not (self.gpus_per_task >= 0 and math.isfinite(self.gpus_per_task)):
            raise LotusError(f"GPUs per task {self.gpus_per_task} must be 0 or more (a fraction such as 0.5 packs units)")
        if self.cpus_per_task is not None and not (self.cpus_per_task > 0 and math.isfinite(self.cpus_per_task)):
            raise LotusError(f"CPUs per task {self.cpus_per_task} must be more than 0")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise LotusError(f"max retries {self.max_retries!r} must be a whole number, 0 or more")

    @property
    def cpus(self) -> float:
        """CPUs a Ray unit asks for: ``cpus_per_task``, by default the torch threads it computes on (so that a
        node runs no more units than it has cores for)."""
        from ...core.device import compute_threads

        return float(compute_threads()) if self.cpus_per_task is None else self.cpus_per_task

    @classmethod
    def from_env(cls, **overrides: Any) -> "ExecutorConfig":
        """``$LOTUS_EXECUTOR``, ``$LOTUS_RAY_ADDRESS``, ``$LOTUS_GPUS_PER_TASK``, ``$LOTUS_CPUS_PER_TASK``
        (the dashboard's worker), with ``overrides`` (CLI flags; None = not given) taking precedence."""
        env = {"kind": os.environ.get("LOTUS_EXECUTOR"), "address": os.environ.get("LOTUS_RAY_ADDRESS"),
               "gpus_per_task": os.environ.get("LOTUS_GPUS_PER_TASK"),
               "cpus_per_task": os.environ.get("LOTUS_CPUS_PER_TASK")}
        values = {k: v for k, v in env.items() if v}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            for name in ("gpus_per_task", "cpus_per_task"):
                if name in values:
                    values[name] = float(values[name])
        except ValueError:
            raise LotusError(f"$LOTUS_{name.upper()} must be a number, got {values[name]!r}") from None
        config = cls(**values)
        config.check()
        ray_only = [k for k in ("address", "gpus_per_task", "cpus_per_task") if overrides.get(k) is not None]
        if ray_only and config.kind == "local":
            flags = ", ".join("--" + ("ray-address" if k == "address" else k.replace("_", "-")) for k in ray_only)
            verb = "applies" if len(ray_only) == 1 else "apply"
            raise LotusError(f"{flags} {verb} only to Ray: add --executor ray (or set LOTUS_EXECUTOR=ray)")
        return config


@dataclass(frozen=True)
class Outcome:
    """One unit's result as it arrives: ``result`` when it succeeded, else ``error`` (one line)."""

    key: str
    result: Any = None
    error: str | None = None


class Batch(ABC):
    """The outcomes of mapped units in completion order; :meth:`cancel` drops units not yet arrived."""

    @abstractmethod
    def __iter__(self) -> Iterator[Outcome]: ...

    @abstractmethod
    def cancel(self, keys: Iterable[str]) -> None: ...

    @property
    @abstractmethod
    def pending(self) -> int:
        """Units submitted and neither arrived nor cancelled."""


class Pool(ABC):
    """One experiment's units on one executor, sharing the state ``setup(ctx, *extra)``.

    Nothing is set up, connected or shipped until the first :meth:`map` with units, so an
    experiment whose units are all stored costs nothing here.
    """

    slots: int = 1  # units that can run at once (running = min(pending, slots))

    @abstractmethod
    def map(self, fn: Callable[[Any, Any], Any], units: dict[str, Any]) -> Batch:
        """Run ``fn(state, unit)`` for each ``key -> unit`` of ``units``.

        A unit that is a tuple may hold values from :meth:`share`: ``fn`` receives the values.
        """

    def share(self, value: Any) -> Any:
        """``value`` (e.g. a round's weights) shipped once for many units of this pool."""
        return value

    def close(self) -> None:
        """Release the shared state."""

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Executor(ABC):
    config: ExecutorConfig

    @abstractmethod
    def pool(self, setup: Callable[..., Any], ctx: Any, *extra: Any, train: bool = False) -> Pool:
        """A pool whose units share ``setup(ctx, *extra)``. A remote executor ships ``ctx``'s model
        and data (its training split too when ``train``) and ``extra`` once, never the store."""

    @abstractmethod
    def resources(self) -> dict:
        """What this executor reports in ``info``: its kind and the resources it can use."""
