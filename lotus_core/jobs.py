"""Background jobs: long experiments run outside the Streamlit script thread.

The queue is huey's SQLite backend (``jobs.db`` beside the results store), consumed by one
worker process (``python -m lotus_core worker``) that the dashboard starts on demand. A job
is an experiment kind registered with ``job=True`` (:mod:`lotus_core.results.registry`) run through
:func:`lotus_core.results.runs.run_experiment`, the same function the CLI calls, so its progress,
points and outcome live in the results store: the page polls the store, a job survives page
switches and browser refreshes, and a killed worker loses no finished point: its run's lease runs
out (:mod:`lotus_core.results.lease`) and any live worker takes it over and resumes it, with no
user action. The dashboard's worker stops with the dashboard; ``python -m lotus_core worker
--stop`` stops a store's workers. This is the only module that imports the queue (huey).
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from huey import SqliteHuey

from .context import Context, open_context
from .core.config import from_stored
from .core.device import background_work, use_compute_threads
from .core.errors import LotusError
from .core.paths import REPO_ROOT, jobs_db
from .results.lease import heartbeat_s, lease_s, pid_alive, token
from .results.registry import get_experiment
from .results.keys import config_id, experiment_config, here_id
from .results.runs import Cancelled, LeaseLost, resolve, run_experiment
from .results.store import RunStatus, Store


@functools.lru_cache(maxsize=None)
def queue(store_path: str) -> tuple[SqliteHuey, Callable[..., Any]]:
    """The huey queue that belongs to the results store at ``store_path``, and its one task.

    With ``$LOTUS_JOBS_IMMEDIATE`` set (tests), tasks run synchronously on submit.
    """
    huey = SqliteHuey(name="lotus", filename=str(jobs_db(store_path)), results=False,
                      immediate=bool(os.environ.get("LOTUS_JOBS_IMMEDIATE")))
    return huey, huey.task(name="lotus.execute")(execute)


@functools.lru_cache(maxsize=8)
def _context(spec_json: str) -> Context:
    """The worker's context; its executor comes from $LOTUS_EXECUTOR / $LOTUS_RAY_ADDRESS (default local)."""
    from .core.executor import ExecutorConfig

    return open_context(**json.loads(spec_json), executor=ExecutorConfig.from_env())


def execute(spec_json: str, kind: str, config: dict) -> None:
    """Worker side: run one job (errors end up in the run's status, not in the worker's log only).

    A run another live process computes is left alone (the worker picks it up again if that
    process dies and its lease runs out); a queued run asked to cancel becomes cancelled.
    """
    job = get_experiment(kind, job=True)
    ctx = _context(spec_json)
    cfg = from_stored(job.config_cls, config)  # a job queued by an older LOTUS may carry retired fields
    run_id = here_id(ctx, kind, cfg)  # the queued run is this machine's (submit started it)
    if ctx.store.live_owner(run_id, lease_s()) not in (None, token()):
        return
    if ctx.store.cancel_requested(run_id):
        ctx.store.set_status(run_id, RunStatus.CANCELLED)
        return
    try:
        with background_work():  # its units yield the host's cores to interactive requests (core/device.py)
            run_experiment(ctx, kind, cfg)
    except (Cancelled, LotusError, LeaseLost):
        pass  # the status (cancelled / failed with its message) is in the store; a busy or lost run has an owner


def context_spec(ctx: Context, model: str, data_root: str | None = None, weights: str | None = None,
                 arch: str | None = None, head_seed: int = 0) -> dict:
    """What a worker needs to reopen ``ctx``: the arguments of :func:`open_context` (the same device)."""
    return {"model": model, "dataset": ctx.dataset, "db": str(ctx.store.path), "data_root": data_root,
            "weights": weights, "arch": arch, "device": str(ctx.device), "head_seed": head_seed}


def submit(spec: dict, kind: str, config: Any, ctx: Context, here: bool = False) -> str:
    """Queue experiment ``kind`` with ``config`` (a dataclass) and return its run id.

    A finished run, and one another live process computes, is not queued again; any other
    (queued, stopped, failed, abandoned) is queued and resumes. The job's spec is stored with
    the run, so any live worker can take the run over if its worker dies.
    """
    get_experiment(kind, job=True)
    # a finished run computed elsewhere serves it (labelled) unless ``here`` asks for this machine's own
    full = experiment_config(ctx, kind, config)  # the key and where it is computed, built once
    served = None if here else resolve(ctx, kind, config, full)
    run_id = served["id"] if served is not None else config_id(full)
    existing = ctx.store.get_run(run_id)
    if existing is not None and (existing["status"] == RunStatus.DONE or ctx.store.live_owner(run_id, lease_s())):
        return run_id
    job = {"spec": spec, "kind": kind, "config": dataclasses.asdict(config)}
    ctx.store.start_run(kind, full, ctx.model_id, ctx.dataset, status=RunStatus.QUEUED)
    ctx.store.set_job(run_id, job)
    _, task = queue(str(ctx.store.path))
    task(json.dumps(spec, sort_keys=True), kind, job["config"])
    return run_id


def cancel(store: Store, run_id: str) -> None:
    """Ask a queued or running job to stop; it ends at its next check, keeping finished points."""
    run = store.get_run(run_id)
    if run is not None and run["status"] in (RunStatus.QUEUED, RunStatus.RUNNING):
        store.set_status(run_id, RunStatus.CANCELLING)


# --------------------------------------------------------------------------- worker processes
_CHILDREN: list[subprocess.Popen] = []  # workers this process started (reaped, and stopped at exit)


def _reap() -> list[subprocess.Popen]:
    """Collect exited children (no zombies) and return the ones still running."""
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]
    return list(_CHILDREN)


def _is_worker_process(pid: int) -> bool:
    """Whether ``pid`` runs ``python -m lotus_core worker`` (its command line, not just a live pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return pid_alive(pid) and b"lotus_core" in cmdline and b"worker" in cmdline


def live_workers(store: Store) -> list[dict]:
    """Workers of ``store`` that renewed their heartbeat within the lease and whose process is a worker; the
    rows of workers of this machine whose process is gone (killed with SIGKILL: no goodbye) are deleted."""
    host, live = socket.gethostname(), []
    for w in store.live_workers(lease_s()):
        if w["host"] != host or _is_worker_process(w["pid"]):
            live.append(w)
        else:
            store.worker_gone(w["token"])
    return live


def worker_pid(store_path: Path) -> int | None:
    """The process id of a live worker of the store at ``store_path``, or None when none is running."""
    if not Path(store_path).is_file():
        return None
    workers = live_workers(Store(store_path))
    return workers[0]["pid"] if workers else None


def worker_alive(store_path: Path) -> bool:
    return worker_pid(store_path) is not None


def needs_worker(store: Store) -> bool:
    """True when jobs wait (queued, or abandoned by a dead worker) and no live worker serves ``store``."""
    return bool(store.stale_jobs(lease_s())) and not live_workers(store) and not _reap()


def ensure_worker(store: Store) -> bool:
    """Start a worker process for ``store`` unless one is alive. Returns True if one was started.

    Liveness is the worker's heartbeat in the store (a pid file could name a reused pid or a
    zombie). Nothing else is touched: runs another live process computes stay its own, and runs
    of a dead worker are taken over by the new worker once their lease ran out. The worker exits
    when this process does (``--exit-with-parent``) and is stopped at exit (see :func:`stop_children`).
    """
    if os.environ.get("LOTUS_JOBS_IMMEDIATE") or live_workers(store) or _reap():
        return False
    log = open(store.path.with_name(store.path.stem + "-worker.log"), "ab")
    env = {k: v for k, v in os.environ.items() if k != "LOTUS_JOBS_IMMEDIATE"}
    proc = subprocess.Popen([sys.executable, "-m", "lotus_core", "worker", "--db", str(store.path),
                             "--exit-with-parent"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=str(REPO_ROOT), env=env)
    log.close()
    if not _CHILDREN:
        atexit.register(stop_children)
    _CHILDREN.append(proc)
    return True


def stop_children(timeout_s: float = 10.0) -> int:
    """Stop the workers this process started (SIGTERM, then SIGKILL after ``timeout_s``); returns how many."""
    alive = _reap()
    for proc in alive:
        proc.terminate()
    for proc in alive:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
    return len(alive)


def stop_workers(store: Store) -> list[int]:
    """SIGTERM every live worker of ``store`` on this machine (verified by heartbeat and command line)."""
    host, pids = socket.gethostname(), []
    for w in live_workers(store):
        if w["host"] == host:
            os.kill(w["pid"], signal.SIGTERM)
            pids.append(w["pid"])
    return pids


def _keeper(store: Store, huey_task: Callable[..., Any], exit_with_parent: bool, stop: threading.Event,
            lock: threading.Lock) -> None:
    """Worker thread: heartbeat, and queue every job whose owner's lease ran out (taken over, resumed)."""
    me, pid, host, parent = token(), os.getpid(), socket.gethostname(), os.getppid()
    seen: dict[str, float] = {}
    first = True
    while not stop.is_set():
        with lock:
            if stop.is_set():
                return
            first = _keep(store, huey_task, me, pid, host, seen, first)
        if exit_with_parent and os.getppid() != parent:
            print("lotus worker: the dashboard that started this worker exited; stopping", file=sys.stderr, flush=True)
            os._exit(0)
        stop.wait(heartbeat_s())


def _keep(store: Store, huey_task: Callable[..., Any], me: str, pid: int, host: str, seen: dict[str, float],
          first: bool) -> bool:
    """One beat of :func:`_keeper`; returns False once the first (full) scan is done."""
    try:
        store.worker_beat(me, pid, host)
        store.settle_abandoned_cancels(lease_s())
        for run in store.stale_jobs(lease_s()):
            mark = run["heartbeat"] or run["updated"]
            if (run["status"] == RunStatus.QUEUED and not first) or seen.get(run["id"]) == mark:
                continue  # queued jobs are in the queue; an abandoned one is queued once per abandonment
            seen[run["id"]] = mark
            job = run["job"]
            huey_task(json.dumps(job["spec"], sort_keys=True), job["kind"], job["config"])
        return False
    except Exception as exc:  # a busy store: try again at the next beat
        print(f"lotus worker: heartbeat failed ({exc})", file=sys.stderr, flush=True)
        return first


def run_worker(store_path: Path, exit_with_parent: bool = False) -> None:
    """Consume the queue of ``store_path`` until killed (``python -m lotus_core worker``).

    The worker registers itself in the store with a heartbeat, computes on ``$LOTUS_THREADS``
    threads like the CLI (at a lower scheduling priority, so the dashboard stays responsive),
    and takes over the jobs of dead workers. ``exit_with_parent``: stop when the process that
    started it (the dashboard) is gone.
    """
    from huey.consumer import Consumer

    from .results.registry import experiments

    experiments()  # import every job kind's module before the first job arrives
    use_compute_threads()
    with contextlib.suppress(OSError):
        os.nice(5)
    store = Store(store_path)
    huey, task = queue(str(store.path))
    store.worker_beat(token(), os.getpid(), socket.gethostname())
    stop, lock = threading.Event(), threading.Lock()
    threading.Thread(target=_keeper, args=(store, task, exit_with_parent, stop, lock), name="lotus-keeper",
                     daemon=True).start()
    try:
        Consumer(huey, workers=1, worker_type="thread", periodic=False).run()
    finally:
        stop.set()
        with lock:  # no heartbeat re-registers the worker after this
            store.worker_gone(token())
