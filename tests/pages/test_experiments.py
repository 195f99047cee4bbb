"""The Experiments page on the default model: the run table, its filters, the curve overlay, delete."""
import json

from lotus_core.context import open_context
from lotus_core.views.experiments import run_table
from lotus_core.views.tables import percent_text
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from tests.pages.helpers import ROOT, open_page
from tests.pages.test_masks import values


def _stored_sweep():
    """A one-point OMP sweep on 200 images (rows: evaluate, prune-eval, sweep; the Overview adds an evaluate)."""
    return run_sweep(open_context(), SweepConfig(methods=("omp",), sparsities=(0.0, 0.5), limit=200))


def test_an_empty_store_says_which_pages_produce_runs():
    at = open_page()  # the Overview stores the dense accuracy: empty the store before switching
    store = open_context().store
    for run_id in store.runs()["id"]:
        store.delete_run(run_id)
    at.switch_page(str(ROOT / "pages" / "experiments.py")).run()
    assert not at.exception
    assert any("Sparsity curves page computes a curve on first visit" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_table_filters_and_the_newest_curve_is_drawn():
    result = _stored_sweep()
    at = open_page("experiments")
    assert not at.exception
    table = at.dataframe[0].value
    expected = run_table(open_context().store)
    assert table["id"].tolist() == expected.loc[expected["kind"] != "prune-eval", "id"].tolist()
    assert sorted(table["kind"]) == ["evaluate", "evaluate", "sweep"]  # + Overview's dense; sweep points hidden
    # no "None" cells: the all-empty error column is left out, a run's missing sparsity or accuracy reads "—"
    assert "error" not in table and not table.isin([None, "None"]).any().any() and not table["sparsity"].isna().any()
    shown = expected[expected["kind"] != "prune-eval"]
    assert table["sparsity"].tolist() == percent_text(shown["sparsity"]).tolist()
    assert (table["sparsity"] == "—").tolist() == shown["sparsity"].isna().tolist()
    assert at.caption[1].value.startswith("3 of 4 runs")
    assert at.caption[2].value.startswith("Runs nobody launched by hand: **evaluate** is the dense model's accuracy")
    at.toggle[0].set_value(True).run()  # show sweep points
    assert at.dataframe[0].value["id"].tolist() == expected["id"].tolist()
    assert at.caption[1].value.startswith("4 of 4 runs")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["sweep: limit 200, sparsities 0,0.5: omp"]  # its settings, no hash
    assert values(spec["data"][0]["y"]) == [100 * result.dense["accuracy"], 100 * result.frame["accuracy"].item()]

    at.multiselect[0].set_value(["evaluate"]).run()  # the kind filter
    assert not at.exception
    assert at.dataframe[0].value["kind"].tolist() == ["evaluate", "evaluate"]
    assert at.caption[1].value.startswith("2 of 4 runs")
    assert any("No run in the table has a curve yet" in i.value for i in at.info)
    options = at.selectbox[0].options  # the run picker follows the table
    assert len(options) == 2 and all(o.startswith("evaluate: limit ") for o in options)

    at.multiselect[0].set_value([]).run()
    at.text_input[0].set_value(result.run_id[:8]).run()  # the text search
    assert at.dataframe[0].value["id"].tolist() == [result.run_id]


def test_delete_asks_for_confirmation_then_removes_the_run():
    result = _stored_sweep()
    at = open_page("experiments")
    at.text_input[0].set_value(result.run_id).run()
    assert [b.label for b in at.get("download_button")] == ["Table (CSV)", "Config (JSON)"]
    next(b for b in at.button if b.label == "Delete run").click().run()
    assert not at.exception
    assert at.warning[0].value.startswith(f"Delete sweep run {result.run_id} with its 1 stored points")
    assert open_context().store.get_run(result.run_id) is not None  # not before confirming
    next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert not at.exception
    assert open_context().store.get_run(result.run_id) is None
    assert sorted(run_table(open_context().store)["kind"]) == ["evaluate", "evaluate", "prune-eval"]


def test_a_running_job_shows_its_progress_and_can_be_cancelled_but_not_deleted():
    ctx = open_context()
    run_id = ctx.store.start_run("lth", ctx.key(kind="lth", target=0.8), ctx.model_id, ctx.dataset)  # status running
    ctx.store.set_progress(run_id, {"round": 1, "of": 4, "step": 30, "steps": 100})
    at = open_page("experiments")
    assert not at.exception
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].proto.value == 26  # rounds 0..4: round 1 and 30 of its 100 steps, (1 + 0.3) / 5
    assert bars[0].proto.text == f"lth {run_id[:6]} (running): round 1 of 4, step 30 of 100"
    at.selectbox[0].set_value(next(o for o in at.selectbox[0].options if f" {run_id[:6]} (running)" in o)).run()
    assert next(b for b in at.button if b.label == "Delete run").disabled  # running: cancel it first
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert not at.exception
    assert ctx.store.get_run(run_id)["status"] == "cancelling"


def test_a_run_is_named_on_the_page_and_two_runs_configurations_are_compared():
    result = _stored_sweep()
    at = open_page("experiments")
    at.text_input[0].set_value(result.run_id[:8]).run()  # search: the sweep alone
    next(t for t in at.text_input if t.label == "Name").set_value("OMP baseline")
    next(t for t in at.text_input if t.label == "Note").set_value("for Friday's demo")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    run = open_context().store.get_run(result.run_id)
    assert (run["name"], run["note"]) == ("OMP baseline", "for Friday's demo")
    at.text_input[0].set_value("friday").run()  # the note is searchable, the name is the table's run column
    assert at.dataframe[0].value["name"].tolist() == ["OMP baseline"]
    at.text_input[0].set_value("").run()
    a = next(s for s in at.selectbox if s.label == "Run A")
    a.set_value(next(o for o in a.options if o.startswith("OMP baseline "))).run()
    b = next(s for s in at.selectbox if s.label == "Run B")
    assert b.value.startswith("evaluate: limit 200, precision ")  # named by its settings, not by the model's key
    diff = at.dataframe[1].value
    assert diff["setting"].tolist()[0] == "kind" and diff.iloc[0][["a", "b"]].tolist() == ['"sweep"', '"evaluate"']
