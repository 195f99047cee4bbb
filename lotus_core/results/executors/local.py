"""The ``local`` executor: units run in this process, one after another, each when the driver asks for its
result (exactly the loop it replaces), inside the host's CPU budget (:func:`~lotus_core.core.device.cpu_slot`)."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from ...core.executor import ExecutorConfig
from .base import Batch, Executor, Outcome, Pool


class LocalExecutor(Executor):
    """Units run in this process, one after another, each when its result is asked for."""

    def __init__(self, config: ExecutorConfig):
        self.config = config

    def pool(self, setup: Callable[..., Any], ctx: Any, *extra: Any, train: bool = False) -> Pool:
        return _LocalPool(setup, (ctx, *extra))

    def resources(self) -> dict:
        import torch

        return {"executor": "local", "resources": {"CPU": os.cpu_count() or 1, "GPU": torch.cuda.device_count()}}


class _LocalPool(Pool):
    def __init__(self, setup: Callable[..., Any], shared: tuple):
        self._setup, self._shared, self._state = setup, shared, None

    def map(self, fn: Callable[[Any, Any], Any], units: dict[str, Any]) -> Batch:
        if self._state is None and units:
            self._state = self._setup(*self._shared)
        return _LocalBatch(fn, self._state, units)

    def close(self) -> None:
        self._state = self._shared = None


class _LocalBatch(Batch):
    def __init__(self, fn: Callable[[Any, Any], Any], state: Any, units: dict[str, Any]):
        self._fn, self._state, self._todo = fn, state, dict(units)

    def __iter__(self) -> Iterator[Outcome]:
        while self._todo:
            key = next(iter(self._todo))
            unit = self._todo.pop(key)
            from ...core.device import cpu_slot  # torch: never imported at the top (CLI start-up)

            with cpu_slot():  # the host's CPU budget (core/device.py), released between units
                result = self._fn(self._state, unit)
            yield Outcome(key, result)  # exceptions propagate, as in a plain loop

    def cancel(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._todo.pop(key, None)

    @property
    def pending(self) -> int:
        return len(self._todo)
