"""A run's progress in words: counters read as 'x of y', the bar's fraction, and a measured ETA."""
import pytest

from lotus_core.results.runs import Run
from lotus_core.views.progress import describe, duration, fraction_done


def test_lth_progress_reads_round_and_step_of_their_totals_with_a_measured_eta():
    p = {"round": 3, "of": 8, "step": 60, "steps": 100, "loss": 0.3124, "elapsed_s": 120.0}
    assert fraction_done(p, "lth") == pytest.approx((3 + 0.6) / 9)  # rounds 0..8: nine of them
    left = 120.0 * (1 - 3.6 / 9) / (3.6 / 9)  # the rate so far: 180 s
    assert describe(p, "lth") == f"round 3 of 8, step 60 of 100, loss 0.312; 2 min 00 s elapsed, about {duration(left)} left"
    assert duration(left) == "3 min 00 s"
    done_training = {"round": 8, "of": 8, "step": 100, "steps": 100}  # the last round trained, not yet evaluated
    assert fraction_done(done_training, "lth") < 1.0
    assert fraction_done({"round": 8, "of": 8, "sparsity": 0.8}, "lth") == 1.0  # the last round stored
    assert fraction_done({"round": 2, "of": 10}, "issp") == pytest.approx(0.2)  # ISSP counts rounds from 1


def test_executor_units_fine_tuning_steps_and_no_progress():
    units = {"done": 3, "planned": 12, "running": 2, "queued": 7, "method": "omp", "elapsed_s": 30}
    assert fraction_done(units) == 0.25
    assert describe(units) == "3 of 12 done, 2 running, 7 queued, method omp; 30 s elapsed, about 1 min 30 s left"
    assert describe({"epoch": 1, "step": 50, "steps": 200}) == "epoch 1, step 50 of 200"
    assert fraction_done({"epoch": 1, "step": 50, "steps": 200}) == 0.25
    assert describe(None) == "waiting for the worker" and fraction_done({"accuracy": 0.5}) is None
    assert duration(3725) == "1 h 02 min"


def test_stored_progress_carries_the_seconds_computed(tiny_ctx):
    rid = tiny_ctx.store.start_run("sweep", {"x": 1})
    seen = []
    run = Run(tiny_ctx.store, rid, "sweep", on_progress=seen.append)
    run.progress(done=1, planned=2)
    stored = tiny_ctx.store.get_run(rid)["progress"]
    assert set(stored) == {"done", "planned", "elapsed_s"} and 0 <= stored["elapsed_s"] < 5
    assert seen == [{"done": 1, "planned": 2}]  # the CLI's callback gets what the run reported
