"""Leases and heartbeats: a live owner's run is never touched, an abandoned one is taken over, a pid
alone (reused, or a zombie) never counts as a live worker, and the dashboard's worker stops with it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from lotus_core import jobs
from lotus_core.results import lease
from lotus_core.results.keys import config_id, experiment_config
from lotus_core.results.runs import LeaseLost, RunBusy, run_experiment, run_id_for
from lotus_core.results.store import Store
from tests.results.test_runs_jobs import CountConfig, count_experiment

FOREIGN = "other-host:4242:abcd1234"  # an owner on another machine: only its heartbeat tells


def own_run(store: Store, run_id: str, owner: str, age_s: float) -> None:
    """Make ``owner`` the running owner of ``run_id`` with a heartbeat ``age_s`` seconds old."""
    assert store.claim(run_id, owner, lease_s=0)
    with store._connect() as con:
        con.execute("UPDATE runs SET heartbeat=?, updated=? WHERE id=?", (time.time() - age_s,) * 2 + (run_id,))


def test_a_run_with_a_live_lease_is_never_touched(tiny_ctx):
    cfg = CountConfig(pieces=3)
    rid = run_id_for(tiny_ctx, "count", cfg)
    assert tiny_ctx.store.start_run("count", experiment_config(tiny_ctx, "count", cfg), status="queued") == rid
    own_run(tiny_ctx.store, rid, FOREIGN, age_s=1)
    with pytest.raises(RunBusy, match=f"run {rid} \\(count\\) is being computed by another live process "
                                      f"\\({FOREIGN}\\)"):
        run_experiment(tiny_ctx, "count", cfg, count_experiment)
    run = tiny_ctx.store.get_run(rid)
    assert (run["status"], run["owner"], run["error"], tiny_ctx.store.points(rid)) == ("running", FOREIGN, None, {})


def test_a_run_whose_lease_ran_out_is_taken_over_and_resumed(tiny_ctx, monkeypatch):
    monkeypatch.setenv("LOTUS_LEASE_S", "5")
    cfg = CountConfig(pieces=3)
    rid = run_id_for(tiny_ctx, "count", cfg)
    tiny_ctx.store.start_run("count", experiment_config(tiny_ctx, "count", cfg), status="queued")
    tiny_ctx.store.put_point(rid, "piece-0", {"i": 0, "square": 0})  # the dead owner's finished piece
    own_run(tiny_ctx.store, rid, FOREIGN, age_s=6)
    assert tiny_ctx.store.live_owner(rid, lease.lease_s()) is None
    assert run_experiment(tiny_ctx, "count", cfg, count_experiment)["total"] == 0 + 1 + 4
    run = tiny_ctx.store.get_run(rid)
    assert run["status"] == "done" and run["owner"] == lease.token()


def test_a_dead_local_owner_is_freed_at_once_and_a_reused_pid_is_not(tiny_ctx):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    assert lease.owner_dead(f"{host}:{dead.pid}:00000000")
    assert not lease.owner_dead(f"{host}:{os.getpid()}:00000000")  # a live pid (maybe reused): the lease decides
    assert not lease.owner_dead(FOREIGN) and not lease.owner_dead(None)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(1.0)  # exited, not reaped: a zombie still answers kill(pid, 0)
    try:
        assert not lease.pid_alive(zombie.pid)
    finally:
        zombie.wait()


def test_heartbeats_renew_and_a_run_taken_over_stops_without_writing(tiny_ctx, monkeypatch):
    monkeypatch.setenv("LOTUS_HEARTBEAT_S", "0.05")
    cfg = CountConfig(pieces=2)
    rid = run_id_for(tiny_ctx, "count", cfg)
    beats = []

    def experiment(ctx, c, run):
        first = ctx.store.get_run(rid)["heartbeat"]
        time.sleep(0.3)
        beats.append(ctx.store.get_run(rid)["heartbeat"] - first)
        with ctx.store._connect() as con:  # another process takes the run over
            con.execute("UPDATE runs SET owner=? WHERE id=?", (FOREIGN, rid))
        time.sleep(0.2)
        run.check()
        return {"never": True}

    with pytest.raises(LeaseLost):
        run_experiment(tiny_ctx, "count", cfg, experiment)
    run = tiny_ctx.store.get_run(rid)
    assert beats[0] > 0 and run["owner"] == FOREIGN and run["status"] == "running" and run["summary"] is None


def test_a_pid_file_or_a_live_unrelated_pid_is_no_live_worker(tiny_ctx):
    store = tiny_ctx.store
    store.worker_beat("me:1:x", os.getpid(), socket.gethostname())  # fresh heartbeat, but this is pytest
    assert store.live_workers(lease.lease_s()) != [] and jobs.live_workers(store) == []
    (store.path.with_name(store.path.stem + "-worker.pid")).write_text(str(os.getpid()))
    assert jobs.worker_pid(store.path) is None


def test_ensure_worker_touches_no_run_and_starts_one_tied_to_the_dashboard(tiny_ctx, monkeypatch):
    """With no live worker: a live CLI run and a queued job stay as they are (no 'interrupted', no
    flushed queue); the new worker exits with its parent; the dashboard stops it at exit."""
    monkeypatch.delenv("LOTUS_JOBS_IMMEDIATE")
    store = tiny_ctx.store
    cli = store.start_run("sweep", {"cli": 1}, status="queued")
    own_run(store, cli, lease.token(), age_s=0)  # a CLI sweep of this machine, alive
    queued = store.start_run("lth", {"job": 1}, status="queued")
    store.set_job(queued, {"spec": {}, "kind": "lth", "config": {}})
    started = []

    @dataclass
    class FakeProc:
        args: list
        pid: int = 999_999

        def poll(self):
            return None

    monkeypatch.setattr(jobs.subprocess, "Popen", lambda args, **kw: started.append(FakeProc(args)) or started[-1])
    monkeypatch.setattr(jobs, "_CHILDREN", [])
    assert jobs.needs_worker(store)
    assert jobs.ensure_worker(store) is True
    assert started[0].args[-4:] == ["worker", "--db", str(store.path), "--exit-with-parent"]
    assert jobs.ensure_worker(store) is False  # its child is starting: not a second one
    assert [store.get_run(r)["status"] for r in (cli, queued)] == ["running", "queued"]
    assert store.get_run(cli)["error"] is None


def test_a_real_worker_registers_its_heartbeat_and_stops_with_the_dashboard(tiny_ctx, monkeypatch):
    monkeypatch.delenv("LOTUS_JOBS_IMMEDIATE")
    monkeypatch.setenv("LOTUS_HEARTBEAT_S", "0.2")
    monkeypatch.setattr(jobs, "_CHILDREN", [])
    store = Store(tiny_ctx.store.path)
    assert jobs.ensure_worker(store)
    proc = jobs._CHILDREN[0]
    deadline = time.time() + 120
    while not jobs.live_workers(store) and time.time() < deadline:
        time.sleep(0.2)
    (worker,) = jobs.live_workers(store)
    assert worker["pid"] == proc.pid and jobs.worker_pid(store.path) == proc.pid
    assert jobs.stop_children() == 1 and proc.returncode is not None
    assert jobs.live_workers(store) == [] and store.live_workers(60) == []  # it unregistered on SIGTERM


def test_config_id_of_a_claimed_run_is_unchanged(tiny_ctx):
    """Ownership columns are bookkeeping, not configuration: claiming never changes a run's id or config."""
    rid = tiny_ctx.store.start_run("count", {"a": 1}, status="queued")
    assert tiny_ctx.store.claim(rid, "x:1:y", lease_s=15)
    assert rid == config_id({"a": 1}) and tiny_ctx.store.get_run(rid)["config"] == {"a": 1}

