"""What every executor is (its configuration, :class:`~lotus_core.core.executor.ExecutorConfig`, is in core/):
the :class:`Executor` that opens a :class:`Pool` of one experiment's units, the :class:`Batch` of their outcomes
in completion order, and one unit's :class:`Outcome` (see :mod:`lotus_core.results.executors`)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ...core.executor import ExecutorConfig


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
