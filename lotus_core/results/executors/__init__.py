"""Executors: where the independent units of an experiment run.

An experiment made of independent units (sweep points, sensitivity cells, ...) does not loop
over them itself. It opens a :class:`~.base.Pool` on ``ctx.executor`` with the state every unit
needs (model and data, shipped once per experiment), maps a pure unit function
``fn(state, unit) -> plain result`` over the units it still lacks, and stores each result the
moment it arrives (:func:`track`): the driver is the only writer of the results store, so a
driver killed mid-experiment keeps every unit that arrived, and a rerun submits only the
missing ones.

- ``local`` (the default): units run one after another in this process, each computed when
  the driver asks for the next result, exactly as the loop it replaces.
- ``ray``: Ray core tasks (Moritz et al., "Ray: A Distributed Framework for Emerging AI
  Applications", OSDI 2018). The shared state goes to the object store once per experiment
  (``ray.put``); each unit is a task asking for ``cpus_per_task`` CPUs and ``gpus_per_task``
  GPUs (a fraction packs several units on one GPU); results are collected in completion
  order with ``ray.wait``; a task whose worker process died is retried ``max_retries`` times
  and then reported as a failed unit with its error. Each Ray worker process sets the
  experiment's state up once (cached by a per-experiment token) and reuses it for every
  unit it runs. Without ``--ray-address`` the cluster is a local one that listens on loopback
  only (:func:`~.ray_executor.start_local_cluster`); only an explicit address joins a cluster on the network.

The executor never enters a result's key: it changes where a number is computed, not the number.

This package: the registry :data:`EXECUTORS` and what the driver does with a batch (:func:`track`,
:func:`run_together`) here; the configuration and the interfaces in ``base.py``; one module per executor
(``local.py``, ``ray_executor.py``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from ...core.errors import LotusError
from ..runs import Run
from ..store import RunStatus
from ...core.executor import EXECUTOR_KINDS, ExecutorConfig
from .base import Batch, Executor, Outcome
from .local import LocalExecutor
from .ray_executor import RayExecutor


EXECUTORS: dict[str, type[Executor]] = dict(zip(EXECUTOR_KINDS, (LocalExecutor, RayExecutor)))


def get_executor(config: ExecutorConfig) -> Executor:
    """The executor ``config`` names, once the configuration is checked (one LotusError line otherwise)."""
    config.check()
    return EXECUTORS[config.kind](config)


def track(run: "Run", batch: Batch, slots: int, done: int, planned: int,
          describe: Callable[[Any], dict] = lambda result: {}) -> Iterator[Outcome]:
    """Yield each successful outcome of ``batch`` for the driver to store, then record progress.

    Progress is ``done`` (stored units, counting those stored before), ``planned``, ``running``
    (the pending units the cluster can run at once), ``queued`` (the rest), ``failed``, plus
    ``describe(result)``; between units the run's cancel flag is polled. Failed units are
    reported together once every other unit has arrived, as one :class:`LotusError` naming
    them (the stored ones stay: a rerun submits only the failed ones).
    """
    failed: list[Outcome] = []
    outcomes = iter(batch)
    try:
        for outcome in outcomes:
            if outcome.error is not None:
                failed.append(outcome)
            else:
                yield outcome
                done += 1
            running = min(batch.pending, slots)
            run.progress(done=done, planned=planned, running=running, queued=batch.pending - running,
                         failed=len(failed), **({} if outcome.error else describe(outcome.result)))
            run.check()
    finally:  # stopped early (cancelled, interrupted, an error): the batch cancels what it still runs
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
    if failed:
        first = failed[0]
        raise LotusError(f"{len(failed)} unit(s) failed ({first.key}: {first.error}); the {done} others are stored, "
                         "rerun to retry the failed ones")


def run_together(ctx: Any, runs: Sequence[tuple[str, Callable[[], Any]]]) -> list:
    """Several whole experiments, ``(run_id, thunk)`` each (e.g. ISSP at several data fractions).

    Local executor: one after another, as a loop. Ray: each gets a driver thread, so the units
    of all of them share the cluster at once; each run still stores its own pieces as they
    arrive. An interrupted driver asks every run to stop at its next check (finished pieces
    stay stored; a rerun resumes them).
    """
    if ctx.executor.kind == "local" or len(runs) < 2:
        return [thunk() for _, thunk in runs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(runs), thread_name_prefix="lotus-run") as threads:
        futures = [threads.submit(thunk) for _, thunk in runs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for run_id, _ in runs:
                run = ctx.store.get_run(run_id)
                if run is not None and run["status"] == RunStatus.RUNNING:
                    ctx.store.set_status(run_id, RunStatus.CANCELLING)
            raise
