"""views.curves.curve_view: what the Sparsity curves page computes, serves or queues (issue 26 §5), on the tiny ViT."""
import dataclasses

import pandas as pd

from lotus_core.pruning.sweep import SweepConfig, run_sweep, turning_point_search
from lotus_core.views import curves
from lotus_core.views.curves import curve_view

ONE_SHOT = SweepConfig(methods=("omp",), sparsities=(0.0, 0.5), limit=50)


def test_a_curve_that_fine_tunes_every_point_is_queued_only_on_compute_and_the_last_curve_stays_drawn(tiny_ctx):
    queued = []

    def launch(kind, config):
        queued.append((kind, config))
        return "f" * 32

    tuned = dataclasses.replace(ONE_SHOT, finetune_steps=2)
    first = curve_view(tiny_ctx, tuned, None, False, launch)
    assert (first.config, first.background, first.queued, queued) == (None, True, None, [])  # nothing drawn, nothing run
    clicked = curve_view(tiny_ctx, tuned, ONE_SHOT, True, launch)
    assert queued == [("sweep", tuned)] and clicked.queued == "f" * 32 and clicked.background
    assert clicked.config == ONE_SHOT and clicked.changed and not clicked.partial  # the last curve, computed here
    pd.testing.assert_frame_equal(clicked.frame, run_sweep(tiny_ctx, ONE_SHOT).frame)


def test_a_refined_curve_answers_by_its_search_and_queues_the_whole_curve_once(tiny_ctx):
    chosen = SweepConfig(methods=("omp",), sparsities=(0.0, 0.3, 0.6, 0.9), limit=50, refine=True)
    queued = []
    view = curve_view(tiny_ctx, chosen, None, False, lambda kind, config: queued.append((kind, config)) or "q" * 32)
    assert queued == [("sweep", chosen)] and view.config == chosen and not view.background
    search = run_sweep(tiny_ctx, turning_point_search(chosen))  # stored by the view: served here
    # drawn meanwhile: only the points evaluated so far, of the 3 grid points above 0 (dense is drawn apart)
    assert view.partial and view.planned == 3 and view.answer.essential == search.essential
    # the worker's run done at once (as in tests): the curve's own result and turning point are drawn
    done = curve_view(tiny_ctx, chosen, None, False, lambda kind, config: run_sweep(tiny_ctx, config).run_id)
    whole = run_sweep(tiny_ctx, chosen)
    assert not done.partial and done.answer.essential == whole.essential
    pd.testing.assert_frame_equal(done.frame, whole.frame)


def test_a_stored_curve_is_served_from_one_lookup_without_queueing(tiny_ctx, monkeypatch):
    stored = run_sweep(tiny_ctx, ONE_SHOT)
    lookups = []
    lookup = curves.stored_summary
    monkeypatch.setattr(curves, "stored_summary", lambda ctx, kind, config: lookups.append(config) or
                        lookup(ctx, kind, config))
    view = curve_view(tiny_ctx, ONE_SHOT, None, False, lambda *a: (_ for _ in ()).throw(AssertionError("queued")))
    assert lookups == [ONE_SHOT] and view.result.run_id == stored.run_id and not view.changed
    pd.testing.assert_frame_equal(view.frame, stored.frame)
