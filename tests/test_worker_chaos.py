"""The background worker never strands a job, and computes what the CLI computes, bit for bit.

Real processes (``python -m lotus_core lth`` and ``python -m lotus_core worker``) on a tiny
checkpoint and the embedded Fashion-MNIST; the helpers are the chaos benchmark's
(benchmarks/chaos.py), with a 3-round LTH so the test takes seconds of CPU.
"""
from __future__ import annotations

import json

import pytest

from benchmarks import chaos
from lotus_core.results.store import Store

TINY_LTH = dict(target=0.5, prune_fraction=0.3, steps=30, batch_size=16, lr=1e-3, limit=50, seed=0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny checkpoint and its uninterrupted LTH run computed by the CLI: (checkpoint, run id, units)."""
    folder = tmp_path_factory.mktemp("chaos")
    checkpoint = chaos.make_checkpoint(folder)
    run_id, units = chaos.reference(folder, checkpoint, TINY_LTH)
    return checkpoint, run_id, units


def test_worker_killed_mid_lth_is_taken_over_and_equals_the_cli_run(tmp_path, uninterrupted):
    """kill -9 the worker after round 0 of a queued LTH job; a new worker (no user action: nothing is
    re-submitted) takes the abandoned run over once its lease runs out and finishes it. The worker's
    run has the CLI's run id (same key) and every round's numbers and masks equal the uninterrupted
    CLI run's, bit for bit; nothing stored before the kill is lost or changed."""
    checkpoint, cli_id, cli_units = uninterrupted
    env = chaos.child_env(lease_s=1.5, heartbeat_s=0.2)
    assert sorted(k for k in cli_units if k.startswith("round-")) == ["round-0", "round-1", "round-2"]

    db = tmp_path / "worker.db"
    run_id = chaos.submit_lth(checkpoint, db, env, TINY_LTH)
    assert run_id == cli_id  # the same key in the dashboard's process, the CLI and the worker
    first = chaos.start_worker(db, env)
    try:
        assert chaos.wait_until(lambda: chaos.rounds_done(db) >= 1, 300)
        chaos.kill9(first)
    finally:
        chaos.kill9(first)
    before = chaos.units(db, run_id)
    run = Store(db).get_run(run_id)
    assert run["status"] == "running" and 1 <= len([k for k in before if k.startswith("round-")]) < 3
    second = chaos.start_worker(db, env)
    try:
        assert chaos.wait_until(lambda: Store(db).get_run(run_id)["status"] == "done", 300, every_s=0.1)
    finally:
        chaos.kill9(second)
    after = chaos.units(db, run_id)
    assert all(after[k] == v for k, v in before.items())  # no finished unit lost or recomputed differently
    assert after == cli_units  # bit-identical to the uninterrupted CLI run
    done = Store(db).get_run(run_id)
    assert done["error"] is None and done["owner"] != run["owner"]  # finished by the second worker


def test_a_cli_run_killed_with_kill_9_resumes_at_once_on_rerun(tmp_path, uninterrupted):
    """A CLI run killed mid-LTH leaves its run 'running' under a dead owner; the rerun claims it at once
    (the owner's pid is gone, so no lease wait), resumes it and ends with the uninterrupted numbers."""
    checkpoint, ref_id, ref_units = uninterrupted
    env = chaos.child_env(lease_s=600, heartbeat_s=0.2)  # a lease far longer than the test: only the dead pid frees it
    db = tmp_path / "cli.db"
    proc = chaos.start_cli(checkpoint, db, env, TINY_LTH)
    try:
        assert chaos.wait_until(lambda: chaos.rounds_done(db) >= 1, 300)
    finally:
        chaos.kill9(proc)
    assert Store(db).get_run(ref_id)["status"] == "running"
    rerun = chaos.start_cli(checkpoint, db, env, TINY_LTH)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert json.loads(out)["run_id"] == ref_id and chaos.units(db, ref_id) == ref_units
