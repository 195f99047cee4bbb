import json

import pytest

from lotus_core.context import open_context
from lotus_core.pruning import PRUNERS
from lotus_core.pruning.sweep import PointEvaluator, SweepConfig, run_sweep
from tests.pages.helpers import array, open_page, values


def curve_names(at) -> list[str]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [t.get("name") for t in spec["data"] if t.get("mode") == "lines+markers"]


def test_first_load_draws_the_default_omp_curve_with_its_turning_point():
    at = open_page("sparsity_curves")
    assert not at.exception
    assert at.multiselect[0].options == list(PRUNERS)  # short chips; what each method does is in the help
    assert all(f"**{m}**: {PRUNERS[m].help}" in at.multiselect[0].help for m in PRUNERS)
    assert curve_names(at) == ["omp"]
    # the page's default curve (deterministic, so recomputing it here gives the same numbers)
    result = run_sweep(open_context(), SweepConfig(methods=("omp",), limit=2000, refine=True))  # the sidebar's default
    ess = result.essential["omp"]
    assert at.metric[0].label == "omp essential sparsity"
    assert at.metric[0].value == f"{100 * ess['essential_sparsity']:.1f}%"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    stars = [t for t in spec["data"] if t.get("marker", {}).get("symbol") == "star"]
    assert [t["name"] for t in stars] == [f"omp turning point: {100 * ess['essential_sparsity']:.0f}%"]
    assert values(stars[0]["x"]) == [pytest.approx(100 * ess["essential_sparsity"])]


def test_compute_curve_adds_methods_and_prune_shows_the_core_accuracy():
    at = open_page("sparsity_curves")
    at.multiselect[0].set_value(["omp", "random"])
    next(w for w in at.select_slider if w.label == "Grid step (%)").set_value(20).run()  # not stored yet: the last curve stays
    assert not at.exception and curve_names(at) == ["omp"]
    assert any("click **Compute curve**" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Compute curve").click().run()
    assert not at.exception and curve_names(at) == ["omp", "random"]
    next(b for b in at.button if b.label == "Prune").click().run()
    assert not at.exception
    pruned = next(m for m in at.metric if m.label == "Pruned accuracy")
    point = PointEvaluator(open_context(), SweepConfig(methods=("omp",), limit=2000)).evaluate("omp", 0.5)
    assert pruned.value == f"{100 * point['accuracy']:.2f}%"


def test_a_fine_tuned_curve_is_queued_as_a_job_and_drawn_once_stored():
    at = open_page("sparsity_curves")
    at.slider[0].set_value((80, 90))
    next(w for w in at.select_slider if w.label == "Fine-tune steps per point").set_value(30)
    at.checkbox[0].uncheck().run()
    assert not at.exception and curve_names(at) == ["omp"]  # still the default curve
    assert any("run in the background" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Compute curve").click().run()  # jobs run inline in tests
    at.run()
    assert not at.exception
    config = SweepConfig(methods=("omp",), sparsities=(0.8, 0.9), limit=2000, refine=False, finetune_steps=30)
    result = run_sweep(open_context(), config)  # served from the store the job wrote
    assert result.frame["sparsity"].tolist() == [0.8, 0.9]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    omp = next(t for t in spec["data"] if t.get("name") == "omp")
    assert values(omp["x"])[-2:] == [80.0, 90.0]
    assert values(omp["y"])[-2:] == pytest.approx((100 * result.frame["accuracy"]).tolist())
    assert any("fine-tuned for 30 steps" in c.value for c in at.caption)


def test_sensitivity_is_queued_as_a_background_job_and_drawn_once_stored():
    from lotus_core.pruning.sensitivity import SensitivityConfig, run_sensitivity

    at = open_page("sparsity_curves")
    at.sidebar.select_slider[0].set_value(200).run()  # the sidebar's test images: a fast grid
    info = next(i.value for i in at.info if i.value.startswith("Sensitivity: prune one layer alone"))
    assert "runs in the background (the job list shows its progress and time left)" in info  # nothing measured yet
    next(b for b in at.button if b.label == "Run sensitivity analysis").click().run()
    assert not at.exception
    runs = open_context().store.runs(kind="sensitivity")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "done"  # jobs run inline in tests
    at.run()  # the page's next rerun draws it
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heatmap = next(s for s in specs if s["data"] and s["data"][0].get("type") == "heatmap")
    table = run_sensitivity(open_context(), SensitivityConfig(limit=200))  # served from the store the job wrote
    assert array(heatmap["data"][0]["z"]).ravel().tolist() == pytest.approx((100 * table.to_numpy()).ravel().tolist())


def test_the_page_settings_live_in_the_url_so_a_reload_or_a_shared_link_reopens_the_same_curve():
    from streamlit.testing.v1 import AppTest

    from tests.pages.helpers import ENTRY, ROOT

    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params.update({"n": "200", "methods": "omp,random", "range": "10,60", "step": "5", "refine": "0",
                            "eps": "99", "checks": "shuffle,bogus"})  # eps out of range and an unknown check
    at.run()
    at.switch_page(str(ROOT / "pages" / "sparsity_curves.py")).run()
    assert not at.exception
    assert at.multiselect[0].value == ["omp", "random"]
    assert at.slider[0].value == (10, 60) and at.select_slider[0].value == 5 and at.checkbox[0].value is False
    assert at.number_input[0].value == 0.01  # the invalid eps (a fraction) fell back to the default; so did the whole checks list
    assert at.multiselect[1].value == []
    assert curve_names(at) == ["omp", "random"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert values(spec["data"][0]["x"]) == pytest.approx([0, *range(10, 61, 5)])  # the dense point, then the grid
    param = lambda name: [at.query_params[name]] if isinstance(at.query_params[name], str) else at.query_params[name]  # noqa: E731
    at.select_slider[0].set_value(20).run()  # a change is written back, so a reload reopens it
    assert param("step") == ["20"] and param("range") == ["10,60"] and param("methods") == ["omp,random"]
    at.select_slider[0].set_value(10).run()  # chosen, so pinned in the link even at the default
    assert param("step") == ["10"] and param("refine") == ["0"]
    assert "eps" not in at.query_params and "ft" not in at.query_params  # never chosen: left out of the link


def open_curves_at(n: int):
    """The Sparsity curves page opened first with the sidebar at ``n`` test images (a link's ``n``)."""
    from streamlit.testing.v1 import AppTest

    from tests.pages.helpers import ENTRY, ROOT

    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params["n"] = str(n)
    at.run()
    return at.switch_page(str(ROOT / "pages" / "sparsity_curves.py")).run()


def test_a_rerun_of_a_stored_curve_looks_it_up_once_and_copies_no_model(monkeypatch):
    """Nothing expensive on a rerun (issue 26 §5): the drawn curve is served from one store lookup, and the per-layer
    OMP mask is not recomputed (no working copy of the model, which PointEvaluator makes)."""
    import lotus_core.views.curves as curves
    from lotus_core.pruning import sweep

    at = open_curves_at(200)  # computed and stored at 200 test images on the first load
    assert not at.exception and curve_names(at) == ["omp"]
    lookups, copies = [], []
    lookup, init = curves.stored_summary, sweep.PointEvaluator.__init__
    monkeypatch.setattr(curves, "stored_summary", lambda ctx, kind, config: lookups.append((kind, config)) or
                        lookup(ctx, kind, config))
    monkeypatch.setattr(sweep.PointEvaluator, "__init__", lambda self, *a, **k: copies.append(a) or init(self, *a, **k))
    at.run()
    assert not at.exception and curve_names(at) == ["omp"]
    drawn = SweepConfig(methods=("omp",), limit=200, refine=True)
    assert [c for kind, c in lookups if kind == "sweep"] == [drawn]  # once, for the curve drawn
    assert copies == []


def test_a_test_set_too_small_for_the_tolerance_is_warned_about():
    """200 test images: the dense accuracy's 95% interval (about ±4 points) is more than twice eps = 1 point, so the
    turning point is within noise: the page says so in one line, and not at eps = 0.03."""
    from lotus_core.pruning.essential import noise_warning

    at = open_curves_at(200)
    dense = open_context().dense_accuracy(limit=200)
    expect = noise_warning(dense["accuracy"], 200, 0.01)
    assert expect is not None and expect.startswith("Only 200 test images")
    assert [w.value for w in at.warning] == [expect]
    at.number_input[0].set_value(0.03)
    next(b for b in at.button if b.label == "Compute curve").click().run()
    assert not at.exception and noise_warning(dense["accuracy"], 200, 0.03) is None and not at.warning
