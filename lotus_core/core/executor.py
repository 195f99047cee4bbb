"""Where an experiment's independent units run: :class:`ExecutorConfig`, from CLI flags or the worker's
environment. A configuration, so it lives in core/ with the others; the executors themselves (a local loop, a
Ray cluster) are :mod:`lotus_core.results.executors`, registered under the names :data:`EXECUTOR_KINDS` gives."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import LotusError

EXECUTOR_KINDS = ("local", "ray")  # the executors' names: results/executors builds its registry on them


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
        if self.kind not in EXECUTOR_KINDS:
            raise LotusError(f"unknown executor {self.kind!r}; choose one of {', '.join(EXECUTOR_KINDS)}")
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
        from .device import compute_threads

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
