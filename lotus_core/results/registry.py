"""One registration per experiment kind: :class:`ExperimentSpec` and the :data:`EXPERIMENTS` registry.

An experiment kind is what a run's ``kind`` column says ("sweep", "lth", ...). Its module
registers it next to the experiment function, once::

    register_experiment(ExperimentSpec("lth", LTHConfig, run_lth, headline=ticket_headline,
                                       curve=ticket_curve, job=True))

and everything that handles runs reads the spec: the worker and ``jobs.submit`` (config class,
function, whether it may run as a background job), the Experiments table (headline numbers,
curve), the Report (curves of stored runs). :func:`experiments` loads the kinds on first use by
importing :mod:`lotus_core.kinds`, the explicit list of registering modules (the one import from
here to the layers above, deferred so that this module imports nothing heavy).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..core.errors import LotusError

Curve = Callable[[dict, "dict | None"], list]
"""``(points, summary) -> rows`` with keys series, axis ("sparsity" | "epoch" | "fraction"), x, accuracy."""


@dataclass(frozen=True)
class Headline:
    """A finished run's headline numbers."""

    accuracy: float | None = None  # its headline top-1 accuracy (fraction)
    sparsity: float | None = None  # the sparsity that accuracy was reached at (fraction of scoped weights pruned)
    text: str = ""  # the same and more, in words (percent)


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything LOTUS knows about one experiment kind."""

    name: str  # the run kind stored in the results store, e.g. "lth"
    config_cls: type | None = None  # frozen dataclass of its hyperparameters (None: keyed by a plain mapping)
    fn: Callable[..., dict] | None = None  # fn(ctx, config, run) -> summary (None: computed inline by its caller)
    headline: Callable[[dict], Headline] | None = None  # summary -> headline numbers (None: first scalar fields)
    curve: Curve | None = None  # (points, summary) -> curve rows (None: the kind has no curve)
    job: bool = False  # may run as a background job on the worker (long experiments)


EXPERIMENTS: dict[str, ExperimentSpec] = {}
"""Kind -> its spec, filled by :func:`register_experiment` in the experiments' own modules."""

_loaded = False


def register_experiment(spec: ExperimentSpec) -> ExperimentSpec:
    """Register ``spec`` under ``spec.name`` (call it once, in the experiment's module)."""
    EXPERIMENTS[spec.name] = spec
    return spec


def experiments() -> dict[str, ExperimentSpec]:
    """All registered kinds, importing :mod:`lotus_core.kinds` (the modules that register them) on first use."""
    global _loaded
    if not _loaded:
        importlib.import_module("lotus_core.kinds")
        _loaded = True
    return EXPERIMENTS


def get_experiment(kind: str, job: bool = False) -> ExperimentSpec:
    """The spec of ``kind`` (with ``job``: one that runs as a background job), else a LotusError."""
    specs = experiments()
    allowed = {k: s for k, s in specs.items() if s.job or not job}
    if kind not in allowed:
        what = "job kind" if job else "experiment kind"
        raise LotusError(f"unknown {what} {kind!r}; choose one of {', '.join(sorted(allowed))}")
    return allowed[kind]


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("n/a" for None), for headline texts."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


__all__ = ["Curve", "EXPERIMENTS", "ExperimentSpec", "Headline", "experiments", "get_experiment", "pct",
           "register_experiment"]
