"""The stored runs a report states, and the two errors that mean "not stored yet" (the only ones a report turns
into a section's note: anything else is a bug and surfaces).

The report is built from *pinned* runs (:func:`pinned`; a small table of the store): the demo's by default,
pinned and unpinned by the user from Experiments and the pages; trying another eps, batch size or method
elsewhere never changes it until that run is pinned. A store with nothing pinned yet for the model pins
what its first report chose. Pinned runs that disagree on the test-set size, the precision used, the protocol
or the test data are flagged (:func:`disagreements`), never mixed silently.
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Callable, TypeVar

import pandas as pd

from ...context import Context
from ...core.errors import LotusError
from ...lottery.common import ticket_curve
from ...results.registry import get_experiment
from ...results.store import RunStatus
from ...training.evaluate import DEFAULT_LIMIT

if TYPE_CHECKING:
    from ...pruning.sweep import SweepResult

T = TypeVar("T")


class NotStored(LotusError):
    """No stored run answers a section yet: raised where a section finds that out, turned by
    :func:`~lotus_core.views.report.build_report` into a note naming the page that produces the result."""

    def sentence(self, page: str) -> str:
        return (f"Missing: {self}; produce it on the {page} page (measured on the sidebar's number of test images, "
                "the one this report uses).")


class Unreadable(NotStored):
    """A stored run a section needs cannot be read: a field is missing or of another shape (a result written by
    another LOTUS version). Raised by :func:`read` only, around reading a stored run's data."""

    def sentence(self, page: str) -> str:
        return f"This section could not be built from the stored results ({self}); produce them again on the {page} page."


def read(run: dict, parse: Callable[[dict], T]) -> T:
    """``parse(run)``, where ``parse`` only reads stored ``run``'s config, summary and points: a KeyError,
    IndexError, TypeError or ValueError there means the stored data has another shape and is raised as
    :class:`Unreadable` naming the run. Keep ``parse`` to reading: an error in what a section does with the
    values it returns is a bug and must surface."""
    try:
        return parse(run)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc} in stored {run['kind']} run {run['id']}") from exc


class _Newest:
    """A :class:`Stored` attribute: the newest usable run of ``kind`` (:meth:`Stored.latest`; ``usable`` None: its
    curve has a point), looked up once per report and recorded as stated (:meth:`Stored.use`) whenever a section
    reads it; None when there is none."""

    def __init__(self, kind: str, usable: Callable[[dict], bool] | None = None):
        self.kind, self.usable = kind, usable

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, stored: Stored | None, owner: type | None = None):
        return self if stored is None else stored.use(stored.found(self.name))


class Stored:
    """The stored results the report draws on for ``ctx``'s model and dataset, each looked up once: among the
    pinned runs (:func:`pinned`), the newest finished run of a kind, else the newest one with some finished
    points. With nothing pinned yet for the model, the demo's runs come first, then the newest measured on
    ``limit`` test images (one protocol: a 200-image ticket is never set against 2,000-image OMP figures;
    runs without a test-image count, e.g. patch scores, always count), and what is chosen gets pinned.
    Whether a run has something to show is read off its kind's registered curve
    (:mod:`lotus_core.results.registry`). Every run a section reads is recorded in :attr:`used`."""

    def __init__(self, ctx: Context, limit: int = DEFAULT_LIMIT):
        self.ctx = ctx
        self.limit = limit
        self.pins = ctx.store.pins(ctx.model_id)
        self.fresh = not self.pins  # nothing pinned or unpinned yet: this report's choice is pinned
        self.demo = set(_demo_runs(ctx).values()) if self.fresh else set()
        self.used: dict[str, dict] = {}  # run id -> run, every run the report states
        self.reading: list[str] = []  # ids of the runs the section being built states
        self._found: dict[str, dict | None] = {}  # _Newest attribute -> its run, looked up once

    def use(self, run: dict | None) -> dict | None:
        """Record that the section being built states ``run`` (returned as it is)."""
        if run is not None:
            self.used.setdefault(run["id"], run)
            if run["id"] not in self.reading:
                self.reading.append(run["id"])
        return run

    def _measured_alike(self, runs: pd.DataFrame) -> pd.DataFrame:
        if not self.fresh:  # pinned runs are used as pinned; disagreements are flagged (Report.warnings)
            return runs[runs["id"].map(lambda i: self.pins.get(i, False)).astype(bool)]
        alike = runs["config"].map(lambda c: c.get("limit", self.limit) == self.limit).astype(bool)
        return runs[alike | runs["id"].isin(self.demo)]

    def latest(self, kind: str, usable: Callable[[dict], bool] | None = None) -> dict | None:
        """The newest usable run of ``kind`` (finished ones first) as a dict with its points; by default
        a run is usable when its kind's curve has a point. A run whose data ``usable`` cannot read is
        :class:`Unreadable`."""
        spec = get_experiment(kind)
        usable = usable or (lambda r: bool(spec.curve(r["points"], r["summary"])))
        runs = self.ctx.store.runs(kind=kind, model=self.ctx.model_id)
        runs = self._measured_alike(runs[runs["dataset"] == self.ctx.dataset])
        runs = runs.assign(done=runs["status"] == RunStatus.DONE, demo=runs["id"].isin(self.demo))
        runs = runs.sort_values(["demo", "done", "created"], ascending=False)
        for row in runs.to_dict(orient="records"):
            row["points"] = self.ctx.store.points(row["id"])
            if read(row, usable):
                return row
        return None

    def dense(self, limit: int) -> dict:
        """The dense accuracy summary: the pinned evaluation, else (nothing pinned yet, or no evaluation pinned)
        the stored one on ``limit`` images (:meth:`Context.dense_accuracy`: computed once when missing)."""
        run = None if self.fresh else self.latest("evaluate", lambda r: r["status"] == RunStatus.DONE
                                                  and "per_class" in (r["summary"] or {}))
        if run is None:  # the default policy's evaluation (the demo's, where it is stored)
            run = self.ctx.store.get_run(self.ctx.dense_accuracy(limit=limit)["run_id"])
        self.use(run)
        return {**run["summary"], "run_id": run["id"]}

    @property
    def sweep(self) -> SweepResult | None:
        """The newest finished sweep with a refined OMP turning point, else with an OMP curve, else any, or None."""
        run, result, _ = self._sweep
        self.use(run)
        return result

    @property
    def eps(self) -> float | None:
        """The tolerance :attr:`sweep`'s turning points were found at, read off that run's stored config (a
        fraction: 0.01 = 1 accuracy point), or None without a sweep."""
        return self._sweep[2]

    @cached_property
    def _sweep(self) -> tuple[dict | None, SweepResult | None, float | None]:
        from ...pruning.sweep import sweep_result

        def done(r: dict) -> bool:
            return r["status"] == RunStatus.DONE

        def omp(r: dict) -> bool:
            return done(r) and "omp" in r["summary"]["essential"]

        run = self.latest("sweep", lambda r: omp(r) and r["config"].get("refine")) or self.latest("sweep", omp) \
            or self.latest("sweep", done)
        if run is None:
            return None, None, None
        return run, read(run, lambda r: _checked(sweep_result(self.ctx, r["summary"]))), read(run, _eps)

    lth = _Newest("lth", lambda r: any(row["x"] > 0 for row in ticket_curve(r["points"], r["summary"])))
    """The newest LTH run with a pruned round (its curve goes past sparsity 0)."""
    issp = _Newest("issp")
    speed = _Newest("speed", lambda r: r["status"] == RunStatus.DONE)
    lottery = _Newest("lottery-train")

    def found(self, name: str) -> dict | None:
        """The run of attribute ``name`` (a :class:`_Newest`), looked up once, not recorded as stated."""
        if name not in self._found:
            newest = getattr(type(self), name)
            self._found[name] = self.latest(newest.kind, newest.usable)
        return self._found[name]

    @property
    def issp_by_fraction(self) -> dict[float, dict]:
        """Data fraction f -> the newest finished ISSP run with that f and otherwise the settings of
        :attr:`issp` (the data-fraction sweep of the Soup page), when there are at least two such fractions."""
        for run in self._issp_by_fraction.values():
            self.use(run)
        return self._issp_by_fraction

    @cached_property
    def _issp_by_fraction(self) -> dict[float, dict]:
        issp = self.found("issp")
        if issp is None or issp["status"] != RunStatus.DONE:
            return {}
        base = {k: v for k, v in issp["config"].items() if k != "data_fraction"}
        runs = self.ctx.store.runs(kind="issp", model=self.ctx.model_id)
        runs = self._measured_alike(runs[runs["dataset"] == self.ctx.dataset])
        out: dict[float, dict] = {}
        for row in runs[runs["status"] == RunStatus.DONE].to_dict(orient="records"):  # newest first
            f = row["config"]["data_fraction"]
            if f not in out and {k: v for k, v in row["config"].items() if k != "data_fraction"} == base:
                out[f] = row
        return dict(sorted(out.items())) if len(out) >= 2 else {}


def _checked(result: SweepResult) -> SweepResult:
    """``result`` once every turning point has the fields the report states (KeyError otherwise)."""
    for ess in result.essential.values():
        for name in ("essential_sparsity", "bracket"):
            if name not in ess:
                raise KeyError(name)
    return result


def _eps(run: dict) -> float:
    """The sweep's tolerance as it was computed (its key holds every SweepConfig field); no default."""
    return float(run["config"]["eps"])


def named(ctx: Context, run: dict) -> dict:
    """``run`` as a section names it: id, kind and where it was computed."""
    from ...results.runs import provenance_label

    return {"run": run["id"], "kind": run["kind"], "provenance": provenance_label(ctx, run["id"])}


def _demo_runs(ctx: Context) -> dict[str, str]:
    from ..demo import demo_runs

    return demo_runs(ctx)


COMPARED = {  # what pinned runs must share to be set side by side: fact -> how it is read off a run
    "test-set size": lambda r: (r["config"] or {}).get("limit"),
    "precision": lambda r: ((r.get("provenance") or {}).get("precision")
                            or ((r["config"] or {}).get("computed") or {}).get("precision")),
    "test data": lambda r: ((r["config"] or {}).get("data") or {}).get("test"),
    "protocol": lambda r: (r["config"] or {}).get("protocol"),
}


def disagreements(runs: list[dict]) -> list[str]:
    """One warning per fact of :data:`COMPARED` on which ``runs`` (the report's) differ, naming the runs on
    each side; runs that do not record a fact (a speed run has no protocol) are left out of that comparison."""
    out = []
    for fact, read_fact in COMPARED.items():
        groups: dict[str, list[str]] = {}
        for run in runs:
            value = read_fact(run)
            if value is not None:
                groups.setdefault(str(value), []).append(f"{run['kind']} {run['id']}")
        if len(groups) > 1:
            sides = "; ".join(f"{value}: {', '.join(names)}" for value, names in groups.items())
            out.append(f"Pinned runs disagree on {fact} ({sides}): their numbers are not comparable; pin runs that "
                       "agree on the Experiments page.")
    return out


def pinned(ctx: Context) -> list[str]:
    """Ids of the runs the Report is built from for ``ctx``'s model: those pinned, or (nothing pinned or unpinned
    yet) the demo's."""
    pins = ctx.store.pins(ctx.model_id)
    return [rid for rid, on in pins.items() if on] if pins else list(_demo_runs(ctx).values())


def pinned_runs(ctx: Context) -> list[dict]:
    """The stored runs of :func:`pinned` (ids no longer in the store left out), for a list of what the Report shows."""
    return [run for run in map(ctx.store.get_run, pinned(ctx)) if run is not None]


def set_pinned(ctx: Context, run_id: str, on: bool = True) -> None:
    """Pin (``on``) or unpin run ``run_id`` for the Report; the first change for a model keeps the demo's runs
    pinned beside it (the default it started from)."""
    if not ctx.store.pins(ctx.model_id):
        for rid in _demo_runs(ctx).values():
            ctx.store.set_pin(rid, True)
    ctx.store.set_pin(run_id, on)


def results_version(ctx: Context, limit: int | None = None) -> tuple:
    """A fingerprint of the stored results of ``ctx``'s model: it changes whenever one of its runs is
    added, updated or deleted, or pinned or unpinned (a page keeps a built report while it stays the same).
    With ``limit``, the dense accuracy on ``limit`` test images is stored first (the one result building a
    report may compute), so that building the report does not change the version it is kept under."""
    if limit is not None:
        ctx.dense_accuracy(limit=limit)
    runs = ctx.store.runs(model=ctx.model_id)
    return (str(ctx.store.path), ctx.model_id, ctx.dataset, len(runs), float(runs["updated"].max()) if len(runs) else 0.0,
            tuple(sorted(ctx.store.pins(ctx.model_id).items())))  # pinning or unpinning changes the report
