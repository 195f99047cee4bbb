"""The Soup page on the default model: launching runs and controls (jobs run inline in tests) and the comparison."""
import dataclasses
import json

import pytest

from lotus_core.context import open_context
from lotus_core.results.store import RunStatus
from lotus_core.views.catalog import accuracy_comparison, run_label
from tests.pages.helpers import open_page
from tests.pages.test_masks import values


def _names(at):
    return [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]


def test_soup_page_launches_an_lth_run_and_its_control_and_compares_them_with_omp():
    at = open_page("soup")
    assert not at.exception
    assert _names(at) == ["omp", "random"]
    at.sidebar.select_slider[0].set_value(200).run()  # test images per evaluation: the sidebar's one setting
    at.number_input[0].set_value(2).run()  # 2 fine-tune steps per round: a fast run
    at.slider[0].set_value(40).run()
    next(b for b in at.button if b.label == "Launch LTH").click().run()
    assert not at.exception
    ctx = open_context()
    runs = ctx.store.runs(kind="lth")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "done"
    cfg, rid = runs.iloc[0]["config"], runs.iloc[0]["id"]
    assert (cfg["steps"], cfg["target"], cfg["limit"]) == (2, 0.4, 200)
    names = _names(at)
    assert names == ["omp", "random", f"LTH {rid[:6]}"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][2]
    expect = accuracy_comparison(ctx, [rid], limit=200)
    assert values(spec["y"]) == pytest.approx((100 * expect[expect["series"] == f"LTH {rid[:6]}"]["accuracy"]).tolist())
    costs = at.dataframe[0].value
    assert costs["training steps"].tolist() == [f"{2 * 4}"] and costs["rounds"].tolist() == ["3"]
    trace = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if any(t.get("name") == "training loss" for t in json.loads(c.proto.spec)["data"]))
    loss, accuracy, chance = trace["data"]
    assert chance["name"] == "chance 10.0%" and values(chance["y"]) == [10.0, 10.0]  # 1 / 10 classes
    assert values(loss["x"]) == list(range(1, 2 * 4 + 1)) and values(accuracy["x"]) == [2, 4, 6, 8]
    assert values(accuracy["y"]) == pytest.approx([100 * p["accuracy"] for k, p in sorted(
        ctx.store.points(rid).items()) if k.startswith("round-")])
    next(b for b in at.button if b.label.startswith("shuffle:")).click().run()  # the control of the last round
    assert not at.exception
    control = ctx.store.runs(kind="lth-control")
    assert len(control) == 1 and control.iloc[0]["status"] == "done" and control.iloc[0]["config"]["round"] == 3
    assert _names(at)[-1] == f"LTH {rid[:6]} shuffle control"
    next(b for b in at.button if b.label == "Fine-tune OMP, same budget").click().run()
    assert not at.exception
    names = _names(at)
    assert names[-1] == f"OMP + 2 fine-tune steps ({rid[:6]})"
    expect = accuracy_comparison(ctx, [rid], limit=200)
    omp_ft = expect[expect["series"] == names[-1]]
    assert len(omp_ft) == 3 and omp_ft["sparsity"].tolist() == pytest.approx(
        [p["sparsity"] for k, p in ctx.store.points(rid).items() if p["round"]], abs=1e-6)
    # RigL at equal training steps: the LTH run's final sparsity, all of its rounds' steps
    next(b for b in at.button if b.label == "RigL, same training steps").click().run()
    assert not at.exception
    at.run()  # the page's next rerun (the job ran inline): the new run is drawn
    rigl = ctx.store.runs(kind="rigl")
    assert len(rigl) == 1 and rigl.iloc[0]["status"] == "done"
    lth_summary = runs.iloc[0]["summary"]
    assert (rigl.iloc[0]["config"]["steps"], rigl.iloc[0]["config"]["target"]) == (
        lth_summary["train_steps"], round(lth_summary["final_sparsity"], 6)) == (8, round(lth_summary["final_sparsity"], 6))
    assert _names(at)[-1] == f"RigL {rigl.iloc[0]['id'][:6]} (8 steps)"
    costs = at.dataframe[0].value
    assert costs["kind"].tolist() == ["lth", "rigl"] and costs["training steps"].tolist() == ["8", "8"]
    # what does not apply is not a "None" cell: no data fraction column at all, RigL's rounds say why
    assert "data fraction" not in costs and costs["rounds"].tolist() == ["3", "— (trained once)"]
    assert not costs.isin([None, "None"]).any().any()
    # what each run reached, in a second narrow table (the two fit a phone's width); runs named by kind and id
    reached = at.dataframe[1].value
    rigl_id = rigl.iloc[0]["id"]
    assert costs["run"].tolist() == reached["run"].tolist() == [f"LTH {rid[:6]}", f"RIGL {rigl_id[:6]}"]
    assert reached["final accuracy"].tolist() == [f"{100 * lth_summary['final_accuracy']:.2f}%",
                                                  f"{100 * rigl.iloc[0]['summary']['accuracy']:.2f}%"]
    assert not reached.isin([None, "None"]).any().any()


def test_soup_page_launches_an_instability_analysis_and_charts_its_barrier():
    at = open_page("soup")
    at.select_slider[0].set_value(200).run()
    tab = at.tabs[3]
    tab.multiselect[0].set_value([0]).run()
    tab.number_input[0].set_value(1).run()  # one step of the run and of each copy
    next(b for b in at.button if b.label == "Launch instability analysis").click().run()
    assert not at.exception
    ctx = open_context()
    runs = ctx.store.runs(kind="instability")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "done"
    assert (runs.iloc[0]["config"]["ks"], runs.iloc[0]["config"]["steps"]) == ([0], 1)
    point = ctx.store.points(runs.iloc[0]["id"])["k-0"]
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if "barrier" in json.loads(c.proto.spec)["layout"]["yaxis"]["title"]["text"])
    assert values(chart["data"][0]["y"]) == pytest.approx([100 * point["barrier"]])
    stable = runs.iloc[0]["summary"]["stable_k"]
    at.run()  # the LTH launcher offers the analysis's smallest stable k
    expect = ["pretrained", f"step:{stable}"] if stable else ["pretrained", "step:50"]
    assert at.selectbox[0].options[:2] == expect


def test_the_compared_runs_are_the_newest_finished_ones_until_chosen_and_a_cancelled_run_never_displaces_them():
    from lotus_core.lottery.lth import LTHConfig
    from lotus_core.results.runs import run_experiment

    ctx = open_context()
    cfg = LTHConfig(target=0.4, prune_fraction=0.3, steps=2, limit=200)
    done = run_experiment(ctx, "lth", cfg)["run_id"]
    cancelled = run_experiment(ctx, "lth", dataclasses.replace(cfg, seed=1))["run_id"]
    ctx.store.set_status(cancelled, RunStatus.CANCELLED)  # the newest LTH run was a cancelled job
    at = open_page("soup")
    at.sidebar.select_slider[0].set_value(200).run()
    assert not at.exception and _names(at) == ["omp", "random", f"LTH {done[:6]}"]
    picker = next(m for m in at.multiselect if m.label == "Ticket runs to compare")
    assert picker.value == [done] and picker.options[0] == run_label(ctx.store.runs(kind="lth").iloc[0])
    picker.set_value([]).run()  # the user's own choice: nothing
    assert _names(at) == ["omp", "random"] and at.query_params["tickets"] in ("", [""])
    newer = run_experiment(ctx, "lth", dataclasses.replace(cfg, seed=2))["run_id"]  # a run finishes meanwhile
    at.run()
    assert _names(at) == ["omp", "random"]  # the choice holds
    next(m for m in at.multiselect if m.label == "Ticket runs to compare").set_value([newer]).run()
    assert _names(at) == ["omp", "random", f"LTH {newer[:6]}"] and at.query_params["tickets"] in (newer, [newer])


def test_the_difference_to_dense_tells_tickets_apart_with_the_dense_interval_as_a_band():
    """Toggled on, each curve is its accuracy minus dense in points, and the dense accuracy's 95% interval is a band
    around 0 (a ticket inside it is not told apart from dense by this test set)."""
    from lotus_core.lottery.lth import LTHConfig
    from lotus_core.results.runs import run_experiment

    ctx = open_context()
    rid = run_experiment(ctx, "lth", LTHConfig(target=0.4, prune_fraction=0.3, steps=2, limit=200))["run_id"]
    at = open_page("soup")
    at.sidebar.select_slider[0].set_value(200).run()
    next(t for t in at.toggle if t.label == "Difference to dense").set_value(True).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    dense = ctx.dense_accuracy(limit=200)
    expect = accuracy_comparison(ctx, [rid], limit=200)
    for name in ("omp", "random", f"LTH {rid[:6]}"):
        trace = next(t for t in spec["data"] if t["name"] == name)
        part = expect[expect["series"] == name]
        assert values(trace["y"]) == pytest.approx((100 * (part["accuracy"] - dense["accuracy"])).tolist())
    band = next(s for s in spec["layout"]["shapes"] if s.get("fillcolor"))
    assert (band["y0"], band["y1"]) == pytest.approx((100 * (dense["ci95"][0] - dense["accuracy"]),
                                                      100 * (dense["ci95"][1] - dense["accuracy"])))
    assert spec["layout"]["yaxis"]["title"]["text"] == "accuracy minus dense (points)"
