import dataclasses
from dataclasses import dataclass

import pytest

from lotus_core import jobs
from lotus_core.core.errors import LotusError
from lotus_core.results.registry import ExperimentSpec, experiments
from lotus_core.results.runs import Cancelled, run_experiment, run_id_for
from lotus_core.results.store import Store


@dataclass(frozen=True)
class CountConfig:
    pieces: int = 4  # how many pieces the experiment produces
    fail_at: int = -1  # raise KeyboardInterrupt when reaching this piece (simulates a kill)


CALLS: list[int] = []


def count_experiment(ctx, cfg, run):
    for i in range(cfg.pieces):
        if run.has(f"piece-{i}"):
            continue
        if i == cfg.fail_at:
            raise KeyboardInterrupt
        CALLS.append(i)
        run.point(f"piece-{i}", {"i": i, "square": i * i})
        run.progress(piece=i + 1, of=cfg.pieces)
        run.check()
    return {"total": sum(p["square"] for p in run.points().values())}


def test_interrupted_experiment_resumes_without_recomputing(tiny_ctx):
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_ctx, "count", CountConfig(pieces=4, fail_at=2), count_experiment)
    # resume the same run (same config, hence same id) with a function that no longer fails
    rid = run_id_for(tiny_ctx, "count", CountConfig(pieces=4, fail_at=2))
    assert tiny_ctx.store.get_run(rid)["status"] == "interrupted"
    assert list(tiny_ctx.store.points(rid)) == ["piece-0", "piece-1"]
    summary = run_experiment(tiny_ctx, "count", CountConfig(pieces=4, fail_at=2),
                             lambda c, _cfg, r: count_experiment(c, CountConfig(4, -1), r))
    assert CALLS == [0, 1, 2, 3] and summary["total"] == 0 + 1 + 4 + 9
    assert tiny_ctx.store.get_run(rid)["status"] == "done"
    # a finished run is served from the store: the function is not called again
    assert run_experiment(tiny_ctx, "count", CountConfig(pieces=4, fail_at=2), None)["total"] == 14


def test_cancelled_run_keeps_finished_pieces(tiny_ctx):
    cfg = CountConfig(pieces=5)
    rid = run_id_for(tiny_ctx, "count", cfg)

    def cancel_after_two(ctx, c, run):
        if len(run.points()) == 2:
            ctx.store.set_status(run.id, "cancelling")

    def experiment(ctx, c, run):
        for i in range(c.pieces):
            run.point(f"piece-{i}", {"i": i})
            cancel_after_two(ctx, c, run)
            run.check()
        return {}

    with pytest.raises(Cancelled):
        run_experiment(tiny_ctx, "count", cfg, experiment)
    assert tiny_ctx.store.get_run(rid)["status"] == "cancelled"
    assert len(tiny_ctx.store.points(rid)) == 2


def test_submit_runs_a_registered_job_through_the_queue(tiny_ctx, monkeypatch):
    monkeypatch.setitem(experiments(), "count", ExperimentSpec("count", CountConfig, count_experiment, job=True))
    monkeypatch.setattr(jobs, "_context", lambda spec: tiny_ctx)
    spec = jobs.context_spec(tiny_ctx, model="tiny")
    CALLS.clear()
    rid = jobs.submit(spec, "count", CountConfig(pieces=3), tiny_ctx)
    run = tiny_ctx.store.get_run(rid)
    assert run["status"] == "done" and run["summary"]["total"] == 5
    assert {k: v for k, v in run["progress"].items() if k != "elapsed_s"} == {"piece": 3, "of": 3}
    assert jobs.submit(spec, "count", CountConfig(pieces=3), tiny_ctx) == rid and CALLS == [0, 1, 2]
    with pytest.raises(LotusError, match="unknown job kind"):
        jobs.submit(spec, "nope", CountConfig(), tiny_ctx)


def test_a_keyed_result_is_computed_once_and_refresh_recomputes(tiny_ctx, tmp_path):
    """The one compute-or-serve primitive with a plain mapping config (as evaluations and tables use it)."""
    calls = []
    compute = lambda ctx, cfg, run: calls.append(1) or {"accuracy": 0.9}  # noqa: E731
    rid = run_id_for(tiny_ctx, "evaluate", {"x": 1})
    assert run_experiment(tiny_ctx, "evaluate", {"x": 1}, compute) == {"accuracy": 0.9, "run_id": rid}
    again = dataclasses.replace(tiny_ctx, store=Store(tiny_ctx.store.path))  # another process, the same store
    assert run_experiment(again, "evaluate", {"x": 1}, compute) == {"accuracy": 0.9, "run_id": rid}
    assert len(calls) == 1
    run_experiment(tiny_ctx, "evaluate", {"x": 1}, compute, refresh=True)
    assert len(calls) == 2


def test_failed_compute_is_recorded_and_not_cached(tiny_ctx):
    with pytest.raises(ValueError):
        run_experiment(tiny_ctx, "evaluate", {"x": 2}, lambda *_: (_ for _ in ()).throw(ValueError("boom")))
    run = tiny_ctx.store.get_run(run_id_for(tiny_ctx, "evaluate", {"x": 2}))
    assert run["status"] == "failed" and run["error"] == "boom"
