"""Background jobs: long experiments run outside the Streamlit script thread.

The queue is huey's SQLite backend (``jobs.db`` beside the results store), consumed by one
worker process (``python -m lotus_core worker``) that the dashboard starts on demand. A job
is an experiment kind registered with ``job=True`` (:mod:`lotus_core.results.registry`) run through
:func:`lotus_core.results.runs.run_experiment`, the same function the CLI calls, so its progress,
points and outcome live in the results store: the page polls the store, a job survives page
switches and browser refreshes, and a killed worker loses no finished point (re-submitting
resumes the run). This is the only module that imports the queue (huey).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from huey import SqliteHuey

from ..core.context import Context, open_context
from ..core.config import from_mapping
from ..core.errors import LotusError
from ..core.paths import REPO_ROOT
from .registry import get_experiment
from .runs import Cancelled, experiment_config, run_experiment, run_id_for
from .store import ACTIVE, RunStatus, Store


def jobs_path(store_path: Path) -> Path:
    return Path(store_path).with_name(Path(store_path).stem + "-jobs.db")


@functools.lru_cache(maxsize=None)
def queue(store_path: str) -> tuple[SqliteHuey, Callable[..., Any]]:
    """The huey queue that belongs to the results store at ``store_path``, and its one task.

    With ``$LOTUS_JOBS_IMMEDIATE`` set (tests), tasks run synchronously on submit.
    """
    huey = SqliteHuey(name="lotus", filename=str(jobs_path(Path(store_path))), results=False,
                      immediate=bool(os.environ.get("LOTUS_JOBS_IMMEDIATE")))
    return huey, huey.task(name="lotus.execute")(execute)


@functools.lru_cache(maxsize=8)
def _context(spec_json: str) -> Context:
    return open_context(**json.loads(spec_json))


def execute(spec_json: str, kind: str, config: dict) -> None:
    """Worker side: run one job (errors end up in the run's status, not in the worker's log only)."""
    job = get_experiment(kind, job=True)
    ctx = _context(spec_json)
    cfg = from_mapping(job.config_cls, config)
    run_id = run_id_for(ctx, kind, cfg)
    if ctx.store.cancel_requested(run_id):
        ctx.store.set_status(run_id, RunStatus.CANCELLED)
        return
    try:
        run_experiment(ctx, kind, cfg)
    except (Cancelled, LotusError):
        pass  # the status (cancelled / failed with its message) is already in the store


def context_spec(ctx: Context, model: str, data_root: str | None = None, weights: str | None = None,
                 arch: str | None = None) -> dict:
    """What a worker needs to reopen ``ctx``: the arguments of :func:`open_context`."""
    return {"model": model, "dataset": ctx.dataset, "db": str(ctx.store.path), "data_root": data_root,
            "weights": weights, "arch": arch}


def submit(spec: dict, kind: str, config: Any, ctx: Context) -> str:
    """Queue experiment ``kind`` with ``config`` (a dataclass) and return its run id.

    A finished run is not queued again; an unfinished one is re-queued and resumes.
    """
    get_experiment(kind, job=True)
    run_id = run_id_for(ctx, kind, config)
    existing = ctx.store.get_run(run_id)
    if existing is not None and existing["status"] in (RunStatus.DONE, RunStatus.QUEUED, RunStatus.RUNNING):
        return run_id
    ctx.store.start_run(kind, experiment_config(ctx, kind, config), ctx.model_id, ctx.dataset, status=RunStatus.QUEUED)
    _, task = queue(str(ctx.store.path))
    task(json.dumps(spec, sort_keys=True), kind, dataclasses.asdict(config))
    return run_id


def cancel(store: Store, run_id: str) -> None:
    """Ask a queued or running job to stop; it ends at its next check, keeping finished points."""
    run = store.get_run(run_id)
    if run is not None and run["status"] in (RunStatus.QUEUED, RunStatus.RUNNING):
        store.set_status(run_id, RunStatus.CANCELLING)


def _pid_path(store_path: Path) -> Path:
    return Path(store_path).with_name(Path(store_path).stem + "-worker.pid")


def worker_pid(store_path: Path) -> int | None:
    """The process id of the live worker of ``store_path``, or None when none is running."""
    try:
        pid = int(_pid_path(store_path).read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def worker_alive(store_path: Path) -> bool:
    return worker_pid(store_path) is not None


def ensure_worker(store: Store) -> bool:
    """Start a worker process for ``store`` unless one is alive. Returns True if one was started.

    Runs left 'running' or 'queued' by a worker that died are marked 'interrupted' (their
    finished points are kept; submitting them again resumes them).
    """
    if os.environ.get("LOTUS_JOBS_IMMEDIATE") or worker_alive(store.path):
        return False
    runs = store.runs()
    for run_id in runs.loc[runs["status"].isin(ACTIVE), "id"]:
        store.set_status(run_id, RunStatus.INTERRUPTED, "the worker stopped; submit again to resume")
    queue(str(store.path))[0].storage.flush_queue()
    log = open(store.path.with_name(store.path.stem + "-worker.log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "lotus_core", "worker", "--db", str(store.path)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=str(REPO_ROOT))
    _pid_path(store.path).write_text(str(proc.pid))
    return True


def run_worker(store_path: Path) -> None:
    """Consume the queue of ``store_path`` until killed (``python -m lotus_core worker``)."""
    from huey.consumer import Consumer

    import torch

    from .registry import experiments

    experiments()  # import every job kind's module before the first job arrives
    # leave a core to the dashboard: two processes spinning on all cores slow each other many-fold
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    _pid_path(store_path).write_text(str(os.getpid()))
    Consumer(queue(str(store_path))[0], workers=1, worker_type="thread", periodic=False).run()
