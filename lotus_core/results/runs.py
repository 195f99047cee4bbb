"""Experiments that are stored as they are produced: the one compute-or-serve primitive.

An experiment is ``fn(ctx, config, run) -> summary`` where ``config`` is a frozen dataclass
of hyperparameters (or, for small keyed results such as one evaluation, a plain mapping) and
``run`` a :class:`Run`: the function writes each finished piece with ``run.point(key, data)``
and skips pieces already there (``run.has(key)``), reports ``run.progress(...)`` and polls
``run.check()`` between pieces, which raises :class:`Cancelled` once the run was asked to stop (or
:class:`LeaseLost` once another process took it over). ``run.stopped()`` only answers whether to stop, without
raising: it is what a loop that stops itself is given (the training loop's ``should_stop``), and the function
must still call ``run.check()`` after such a loop, or the partial result of a loop that stopped early would be
stored as finished. :func:`run_experiment` gives it a run keyed by the hash of the full
configuration, serves a finished run from the store, and records the outcome. Everything that
stores a result goes through it: the CLI, background jobs (:mod:`lotus_core.jobs`),
single evaluations, sweep points and the catalog's tables. Its semantics, in one place:

- a finished (``done``) run is served from the store, its summary with ``run_id`` added;
- a finished run of the same experiment computed elsewhere (another precision, thread count or device, or
  another training split: :mod:`lotus_core.results.provenance`) is served too, unless ``here=True``; its
  ``run_id`` is that run's, whose provenance pages show as a label (:func:`provenance_label`);
- ``refresh=True`` deletes the run computed here (points and blobs) and computes it afresh; a run computed
  elsewhere is kept beside it;
- an unfinished run resumes: its stored points are kept;
- the outcome is ``done``; ``cancelled`` on :class:`Cancelled`; ``interrupted`` on
  KeyboardInterrupt (rerun to resume); ``failed`` on any other error, with a one-line message.

While it computes, the run is *claimed* by this process and its heartbeat renewed
(:mod:`lotus_core.results.lease`): a run another live process computes is never touched
(:class:`RunBusy`, one line), and a run whose owner died is taken over and resumed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..core.errors import LotusError, first_line
from .lease import Lease, lease_s, owner_dead, token
from .keys import COMPUTED, config_id, experiment_config, here_id, reuse_ids
from .provenance import elsewhere, finished, label, machine
from .store import RunStatus, Store
from .schema import StoreFull, disk_full



class Context(Protocol):
    """What running an experiment needs of a :class:`lotus_core.context.Context` (the layer above this one,
    which bundles a model, its data and this store): the store, the key of a result and where it is computed."""

    store: Store
    model_id: str
    dataset: str

    def key(self, **params: Any) -> dict: ...

    def computed(self, **params: Any) -> dict: ...

    def require_trained_head(self) -> None: ...

    def dense_accuracy(self, **kwargs: Any) -> dict: ...


class Cancelled(Exception):
    """Raised inside an experiment when its run was cancelled; finished points stay stored."""


class LeaseLost(Exception):
    """Raised inside an experiment whose run another process took over (this one stalled past its lease)."""


class RunBusy(LotusError):
    """The run is being computed by another live process (CLI or worker); it is left alone."""


@dataclass
class Run:
    """Handle of one stored experiment, passed to the experiment function."""

    store: Store
    id: str
    kind: str
    on_progress: Callable[[dict], None] | None = None
    lease: Lease | None = None
    started: float = field(default_factory=time.monotonic)  # when this process began computing it

    def progress(self, **fields: Any) -> None:
        """Record progress (e.g. ``round=3, of=10, accuracy=0.88``) for pollers and the CLI; the stored copy
        also holds ``elapsed_s``, the seconds this process has computed the run (pages derive an ETA from it)."""
        self.store.set_progress(self.id, {**fields, "elapsed_s": round(time.monotonic() - self.started, 1)})
        if self.on_progress is not None:
            self.on_progress(fields)

    def stopped(self) -> bool:
        """True once the run was asked to cancel or another process took it over."""
        return (self.lease is not None and self.lease.lost) or self.store.cancel_requested(self.id)

    def check(self) -> None:
        """Raise :class:`LeaseLost` if the run was taken over, :class:`Cancelled` if it was asked to cancel."""
        if self.lease is not None and self.lease.lost:
            raise LeaseLost(self.id)
        if self.stopped():
            raise Cancelled(self.id)

    def point(self, key: str, data: dict) -> None:
        self.store.put_point(self.id, key, data)

    def has(self, key: str) -> bool:
        return self.store.get_point(self.id, key) is not None

    def get(self, key: str) -> dict | None:
        return self.store.get_point(self.id, key)

    def points(self) -> dict[str, dict]:
        return self.store.points(self.id)

    def blob(self, name: str, data: bytes | None = None) -> bytes | None:
        """Store ``data`` under ``name``, or read it back when ``data`` is None."""
        if data is None:
            return self.store.get_blob(self.id, name)
        self.store.put_blob(self.id, name, data)
        return data


def resolve(ctx: Context, kind: str, config: Any, full: dict | None = None) -> dict | None:
    """The finished run that serves this experiment here, never computing: the one computed here, else the
    newest of the same key computed elsewhere, else the newest of its family (another training split); None
    when there is none. ``full``: the experiment's :func:`~lotus_core.results.keys.experiment_config`, when
    the caller has built it already."""
    full = full if full is not None else experiment_config(ctx, kind, config)
    run = ctx.store.get_run(config_id(full))
    if run is not None and run["status"] == RunStatus.DONE:
        return run
    key_id, family = reuse_ids(full)
    found = ctx.store.alike(key_id, family)
    return found[0] if found else None


def run_id_for(ctx: Context, kind: str, config: Any) -> str:
    """The id of the run that serves this experiment here (:func:`resolve`), else the id it gets when computed."""
    run = resolve(ctx, kind, config)
    return run["id"] if run is not None else here_id(ctx, kind, config)


def served_from(ctx: Context, run: dict) -> list[str]:
    """How the stored ``run`` differs from computing it here, in words (empty: computed as it would be here)."""
    config = run["config"] or {}
    params = {k: v for k, v in config.items() if k not in ("model", "dataset", "data", "precision", "kind", COMPUTED)}
    mine = ctx.key(kind=run["kind"], **params)
    return elsewhere(run.get("provenance") or config.get(COMPUTED), ctx.computed(**params), config, mine)


def provenance_label(ctx: Context, run_id: str) -> str:
    """One line naming where and how run ``run_id`` was computed and how that differs from computing it here
    (:func:`~lotus_core.results.provenance.label`): for pages, exports and ``--json``."""
    run = ctx.store.get_run(run_id)
    return "not stored" if run is None else label(run.get("provenance"), served_from(ctx, run))


def run_experiment(ctx: Context, kind: str, config: Any, fn: Callable[[Context, Any, Run], dict] | None = None,
                   on_progress: Callable[[dict], None] | None = None, refresh: bool = False,
                   here: bool = False) -> dict:
    """Run ``fn(ctx, config, run)`` as a stored experiment and return its summary (with ``run_id``).

    ``fn`` defaults to the function registered for ``kind`` (:mod:`lotus_core.results.registry`), which
    is how the CLI and the worker run a kind. See the module docstring for what is served, resumed,
    refreshed and recorded; the run's wall time accumulates over resumes.
    Raises :class:`RunBusy` (a LotusError) while another live process computes the same run.
    """
    # an experiment config uses the model's head as it is unless it says otherwise (fine-tuning and the Essential
    # Sparsity protocol train it); plain-mapping kinds (evaluate: the "before" accuracy; prune-eval, whose
    # PointEvaluator checks) are measurements the caller vouches for
    if dataclasses.is_dataclass(config) and getattr(config, "needs_trained_head", True):
        ctx.require_trained_head(f"running {kind}")
    full = experiment_config(ctx, kind, config)
    run_id = config_id(full)
    existing = ctx.store.get_run(run_id)
    if existing is not None and existing["status"] == RunStatus.DONE and not refresh:
        return {**existing["summary"], "run_id": run_id}
    if existing is None and not (refresh or here):  # a run begun here resumes instead
        served = resolve(ctx, kind, config)
        if served is not None:  # the same experiment computed elsewhere: served, labelled by provenance_label
            return {**served["summary"], "run_id": served["id"]}
    me, lease = token(), lease_s()
    owner = ctx.store.live_owner(run_id, lease)
    if owner is not None and owner != me:
        raise RunBusy(f"run {run_id} ({kind}) is being computed by another live process ({owner}); wait for it "
                      "(see `python -m lotus_core runs`) or cancel it")
    if refresh and existing is not None:
        ctx.store.delete_run(run_id)
        existing = None
    if fn is None:
        from .registry import get_experiment

        fn = get_experiment(kind).fn
    if existing is None or not existing.get("provenance"):
        ctx.store.start_run(kind, full, ctx.model_id, ctx.dataset, status=RunStatus.QUEUED,
                            provenance=machine(full[COMPUTED]))
    previous_owner = (existing or {}).get("owner")
    if not ctx.store.claim(run_id, me, lease, dead_owner=previous_owner if owner_dead(previous_owner) else None):
        raise RunBusy(f"run {run_id} ({kind}) was claimed by another process just now; wait for it or cancel it")
    holder = Lease(ctx.store, run_id)
    run = Run(ctx.store, run_id, kind, on_progress, holder)
    t0 = time.perf_counter()
    try:
        with holder:
            summary = dict(fn(ctx, config, run))
        if holder.lost:  # taken over while its last piece computed: the new owner's row is not overwritten
            raise LeaseLost(run_id)
    except LeaseLost:
        raise
    except Cancelled:
        ctx.store.set_status(run_id, RunStatus.CANCELLED)
        raise
    except KeyboardInterrupt:
        ctx.store.set_status(run_id, RunStatus.INTERRUPTED, "interrupted; rerun to resume")
        raise
    except Exception as exc:
        if disk_full(exc):  # not the run's fault: kept to resume once space is freed (its rolled-back write
            # freed the pages this one-row update needs)
            with contextlib.suppress(LotusError):
                ctx.store.set_status(run_id, RunStatus.INTERRUPTED, "the disk is full; free space and rerun to resume")
            raise StoreFull("the disk is full; free space and rerun to resume (finished results are kept)") from None
        ctx.store.set_status(run_id, RunStatus.FAILED, one_line(exc))
        raise
    summary["run_id"] = run_id
    previous = (existing or {}).get("duration_s") or 0.0
    wall = previous + time.perf_counter() - t0
    ctx.store.set_provenance(run_id, finished((ctx.store.get_run(run_id) or {}).get("provenance"), wall))
    ctx.store.finish_run(run_id, summary, wall)
    return summary


def one_line(exc: BaseException) -> str:
    """The message stored with a failed run: the error's first line (at most 300 characters), or its type."""
    return first_line(exc, 300)


def stored_summary(ctx: Context, kind: str, config: Any) -> dict | None:
    """The summary of the finished run that serves this config here (:func:`resolve`: computed here, else
    elsewhere), or None (never computes anything)."""
    run = resolve(ctx, kind, config)
    return None if run is None else {**run["summary"], "run_id": run["id"]}


def stored_config(ctx: Context, run: dict) -> Any:
    """The config of stored ``run`` rebuilt for this context: its registered kind's dataclass, or for the base
    model's accuracy (kind ``evaluate``) the plain mapping. Raises LotusError for kinds a page keys itself."""
    from ..core.config import from_stored
    from .registry import experiments

    base = ctx.key(kind=run["kind"])
    params = {k: v for k, v in run["config"].items() if k not in base and k not in (COMPUTED, "revision")}
    if run["kind"] == "evaluate":
        return params
    spec = experiments().get(run["kind"])
    if spec is None or spec.config_cls is None:
        raise LotusError(f"a {run['kind']} result is recomputed by the page that shows it; open that page and "
                         "choose its settings again")
    return from_stored(spec.config_cls, params)  # fields an older LOTUS stored are mapped by the config class


def recompute_here(ctx: Context, run_id: str) -> dict:
    """Compute the experiment of stored run ``run_id`` (computed elsewhere) here, under this machine's id, keeping
    the other run: both stay stored and comparable (:func:`stored_config` rebuilds its config). Returns the new
    summary (with its ``run_id``)."""
    run = ctx.store.get_run(run_id)
    if run is None:
        raise LotusError(f"no run {run_id} in {ctx.store.path}; list runs with `python -m lotus_core runs`")
    config = stored_config(ctx, run)
    if run["kind"] == "evaluate":  # the base model's accuracy (Context.dense_accuracy)
        return ctx.dense_accuracy(**config, here=True)
    return run_experiment(ctx, run["kind"], config, here=True)
