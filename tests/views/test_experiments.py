"""The Experiments table: flattening, filtering, curves, downloads and deletion on tiny stored runs."""
import io
import json
import zipfile

import pandas as pd
import pytest

from lotus_core.core.errors import LotusError
from lotus_core.views.experiments import (CURVE_COLUMNS, TABLE_COLUMNS, config_json, curve_runs, delete_run, downloads,
                                    filter_runs, get_run, headline, mask_blobs, overlay_curves, run_name,
                                    overlay_figures, run_table)
from lotus_core.lottery.lth import LTHConfig, run_lth
from lotus_core.patches.ticket_training import LotteryTrainConfig, run_lottery_train
from lotus_core.pruning import Mask
from lotus_core.results.runs import run_experiment
from lotus_core.results.keys import config_id
from lotus_core.pruning.sweep import SweepConfig, run_sweep

SWEEP = SweepConfig(methods=("omp",), sparsities=(0.0, 0.5), limit=100)
LTH = LTHConfig(target=0.4, prune_fraction=0.25, steps=1, batch_size=8, limit=50)  # rounds at 25% and 40%


@pytest.fixture
def sweep_ctx(tiny_ctx):
    """tiny_ctx with one stored sweep: rows evaluate (its dense), prune-eval (omp at 50%) and sweep."""
    tiny_ctx.sweep = run_sweep(tiny_ctx, SWEEP)
    return tiny_ctx


def test_run_table_has_one_row_per_run_with_headline_numbers(sweep_ctx):
    ctx, result = sweep_ctx, sweep_ctx.sweep
    table = run_table(ctx.store)
    assert list(table.columns) == TABLE_COLUMNS
    assert sorted(table["kind"]) == ["evaluate", "prune-eval", "sweep"]
    rows = table.set_index("kind")
    dense, point = result.dense["accuracy"], result.frame.iloc[0]
    assert rows.loc["sweep", "accuracy"] == dense
    assert rows.loc["sweep", "sparsity"] == result.essential["omp"]["essential_sparsity"]
    assert rows.loc["sweep", "headline"] == (f"dense {100 * dense:.1f}%; essential sparsity omp "
                                             f"{100 * result.essential['omp']['essential_sparsity']:.1f}%")
    assert rows.loc["prune-eval", "accuracy"] == point["accuracy"]
    assert rows.loc["prune-eval", "sparsity"] == point["sparsity_reached"] == 0.5
    assert rows.loc["evaluate", "headline"] == f"dense accuracy {100 * dense:.1f}% on 100 images"
    assert (table["status"] == "done").all() and (table["duration_s"] > 0).all()
    for run_id, config in zip(table["id"], table["config"]):  # the configuration's hash is the run id
        assert config_id(json.loads(config)) == run_id
    assert table["created"].is_monotonic_decreasing


def test_filters_by_kind_status_model_and_text(sweep_ctx):
    table = run_table(sweep_ctx.store)
    assert list(filter_runs(table)["id"]) == list(table["id"])
    assert list(filter_runs(table, kinds=["sweep", "evaluate"])["kind"]) == ["evaluate", "sweep"]  # newest first
    assert filter_runs(table, statuses=["failed"]).empty
    assert len(filter_runs(table, models=["tiny@seed0"])) == 3 and filter_runs(table, models=["other"]).empty
    sweep_id = table.loc[table["kind"] == "sweep", "id"].item()
    assert list(filter_runs(table, text=sweep_id[:8].upper())["id"]) == [sweep_id]
    assert list(filter_runs(table, text='"method":"omp"')["kind"]) == ["prune-eval"]  # searches the configuration
    assert list(curve_runs(table)["kind"]) == ["sweep"]
    assert sorted(filter_runs(table, points=False)["kind"]) == ["evaluate", "sweep"]  # sweep points left out


def test_sweep_curve_starts_at_the_dense_model(sweep_ctx):
    result = sweep_ctx.sweep
    frame = overlay_curves(sweep_ctx.store, [result.run_id, "not-a-run"])
    assert list(frame.columns) == CURVE_COLUMNS
    assert frame["run"].unique().tolist() == [run_name("sweep", sweep_ctx.store.get_run(result.run_id)["config"])]
    assert frame["x"].tolist() == [0.0, 0.5]
    assert frame["accuracy"].tolist() == [result.dense["accuracy"], result.frame["accuracy"].item()]
    fig = overlay_figures(frame)["sparsity"]
    assert [t.name for t in fig.data] == ["sweep: limit 100, sparsities 0,0.5: omp"]  # settings, not a hash
    assert list(fig.data[0].y) == pytest.approx([100 * a for a in frame["accuracy"]])
    assert fig.layout.xaxis.title.text == "sparsity (% of scoped weights pruned)"


def _masks_download(store, run_id):
    """(file name, bytes) of a run's mask download (from :func:`downloads`), or None without masks."""
    found = [d for d in downloads(store, run_id) if d.label.startswith("Mask")]
    return (found[0].file_name, found[0].data()) if found else None


def test_lth_masks_download_as_a_zip_of_the_round_masks(tiny_ctx):
    summary = run_experiment(tiny_ctx, "lth", LTH, run_lth)
    run_id, store = summary["run_id"], tiny_ctx.store
    assert mask_blobs(store, run_id) == ["mask-round-1.safetensors", "mask-round-2.safetensors"]
    name, data = _masks_download(store, run_id)
    assert name == f"{run_id}-masks.zip"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["mask-round-1.safetensors", "mask-round-2.safetensors"]
    points = store.points(run_id)
    for r in (1, 2):
        mask = Mask.from_bytes(archive.read(f"mask-round-{r}.safetensors"))
        assert mask.sparsity == points[f"round-{r}"]["sparsity"]
    frame = overlay_curves(store, [run_id])
    assert frame["x"].tolist() == [points[f"round-{r}"]["sparsity"] for r in range(3)]
    assert frame["accuracy"].tolist() == [points[f"round-{r}"]["accuracy"] for r in range(3)]
    row = run_table(store).set_index("kind").loc["lth"]
    assert (row["accuracy"], row["sparsity"]) == (summary["final_accuracy"], summary["final_sparsity"])
    assert row["headline"] == f"2 rounds to {100 * summary['final_sparsity']:.1f}%: {100 * summary['final_accuracy']:.1f}%"


def test_a_single_mask_downloads_as_itself_and_a_run_without_masks_as_nothing(sweep_ctx):
    store, sweep_id = sweep_ctx.store, sweep_ctx.sweep.run_id
    assert _masks_download(store, sweep_id) is None
    store.put_blob(sweep_id, "mask.safetensors", b"abc")
    store.put_blob(sweep_id, "keep.safetensors", b"not a mask")
    assert _masks_download(store, sweep_id) == (f"{sweep_id}-mask.safetensors", b"abc")


def test_downloads_are_the_csv_the_masks_and_the_configuration(sweep_ctx):
    store, run_id = sweep_ctx.store, sweep_ctx.sweep.run_id
    items = downloads(store, run_id)
    assert [d.label for d in items] == ["Table (CSV)", "Config (JSON)"]
    assert items[0].file_name == f"{run_id}.csv" and items[0].data() == store.export_csv(run_id)
    assert items[0].data().splitlines()[0].split(",")[:3] == ["key", "method", "sparsity"]
    assert json.loads(items[1].data()) == store.get_run(run_id)["config"] == json.loads(config_json(store, run_id))
    store.put_blob(run_id, "mask-a.safetensors", b"a")
    store.put_blob(run_id, "mask-b.safetensors", b"b")
    items = downloads(store, run_id)
    assert [d.label for d in items] == ["Table (CSV)", "Masks (2 safetensors, zip)", "Config (JSON)"]
    assert zipfile.ZipFile(io.BytesIO(items[1].data())).read("mask-b.safetensors") == b"b"


def test_lottery_training_curve_is_per_arm_and_epoch(tiny_ctx):
    cfg = LotteryTrainConfig(epochs=2, steps_per_epoch=1, batch_size=8, fraction=0.05, limit=50)
    summary = run_experiment(tiny_ctx, "lottery-train", cfg, run_lottery_train)
    frame = overlay_curves(tiny_ctx.store, [summary["run_id"]])
    assert frame[["series", "x"]].values.tolist() == [["full", 1], ["full", 2], ["lottery", 1], ["lottery", 2]]
    assert frame.loc[frame["series"] == "lottery", "accuracy"].tolist() == summary["lottery"]["accuracy"]
    assert list(overlay_figures(frame)) == ["epoch"]
    assert headline("lottery-train", summary).accuracy == summary["lottery"]["final_accuracy"]


def test_delete_refuses_active_runs_and_removes_points_and_blobs(sweep_ctx):
    store, run_id = sweep_ctx.store, sweep_ctx.sweep.run_id
    store.put_blob(run_id, "mask.safetensors", b"x")
    store.set_status(run_id, "running")
    with pytest.raises(LotusError, match=f"^run {run_id} is running; cancel it first, then delete it$"):
        delete_run(store, run_id)
    store.set_status(run_id, "done")
    assert delete_run(store, run_id[:10])["id"] == run_id  # a unique prefix is enough
    assert store.get_run(run_id) is None and store.points(run_id) == {} and store.blob_names(run_id) == []
    assert sorted(run_table(store)["kind"]) == ["evaluate", "prune-eval"]  # the other runs stay


def test_get_run_needs_a_known_unique_id(sweep_ctx):
    store = sweep_ctx.store
    with pytest.raises(LotusError, match="^no run 'zzz' in .*; list runs with `python -m lotus_core runs`$"):
        get_run(store, "zzz")
    with pytest.raises(LotusError, match="^no run '' in "):  # an empty prefix matches nothing, not everything
        get_run(store, "")
    store.start_run("evaluate", {"a": 1})
    store.start_run("evaluate", {"a": 2})
    ids = sorted(store.runs()["id"])
    common = next(i for i in range(16) if len({x[:i + 1] for x in ids}) == len(ids))
    if common:  # two of the ids share a prefix of `common` digits
        prefix = min((x[:common] for x in ids), key=lambda p: -sum(x.startswith(p) for x in ids))
        with pytest.raises(LotusError, match="is ambiguous"):
            get_run(store, prefix)


def test_headline_of_an_unknown_kind_lists_its_scalars():
    head = headline("future-kind", {"score": 0.12345, "name": "x", "nested": {"a": 1}, "run_id": "abc"})
    assert head.text == "score 0.1235, name x" and head.accuracy is None
    assert headline("sweep", None).text == ""


def test_runs_are_named_by_the_settings_that_differ_from_their_kinds_defaults(sweep_ctx):
    config = sweep_ctx.store.get_run(sweep_ctx.sweep.run_id)["config"]
    assert run_name("sweep", config) == "sweep: limit 100, sparsities 0,0.5"  # SWEEP away from SweepConfig()
    assert run_name("sweep", {"methods": ["omp", "wanda"], "refine": True, "limit": 2000, "model": "x"}) == \
        "sweep: methods omp,wanda, refine"  # the limit is the default; model and the rest of the key are not settings
    assert run_name("sweep", {"methods": ["omp"], "limit": 2000}) == "sweep: defaults"
    assert run_name("lth", {"target": 0.5, "steps": 3, "lr": 0.003, "seed": 1, "limit": 50}) == \
        "lth: target 0.5, steps 3, lr 0.003, seed 1, +1 more"
    assert run_name("lth-control", {"lth": {"target": 0.5}, "round": 2, "control": "shuffle", "seed": 0}) == \
        "lth-control: round 2, control shuffle, seed 0"  # a config with required fields: its own settings
    store = sweep_ctx.store
    twin = store.start_run("sweep", {**config, "model": "other"})  # the same settings on another model
    store.put_point(twin, "omp@0.5000", {"method": "omp", "sparsity": 0.5, "accuracy": 0.5})
    store.finish_run(twin, {"dense": {"accuracy": 0.6}})
    names = overlay_curves(store, [sweep_ctx.sweep.run_id, twin])["run"].unique().tolist()
    assert sorted(names) == sorted(f"{run_name('sweep', config)} ({i[:6]})" for i in (sweep_ctx.sweep.run_id, twin))



def test_a_run_is_named_and_annotated_and_keeps_both_when_it_is_computed_again(sweep_ctx):
    from lotus_core.views.experiments import NAME_CHARS, annotate_run

    ctx, rid = sweep_ctx, sweep_ctx.sweep.run_id
    run = annotate_run(ctx.store, rid[:8], "  baseline OMP  ", "the curve for the demo")  # a prefix, trimmed
    assert (run["id"], run["name"], run["note"]) == (rid, "baseline OMP", "the curve for the demo")
    table = run_table(ctx.store).set_index("id")
    assert table.loc[rid, "name"] == "baseline OMP" and table.loc[rid, "note"] == "the curve for the demo"
    other = table.index[table["kind"] == "evaluate"][0]
    assert table.loc[other, "name"] == run_name("evaluate", ctx.store.get_run(other)["config"])  # unnamed: its settings
    assert filter_runs(run_table(ctx.store), text="for the DEMO")["id"].tolist() == [rid]  # the note is searched
    ctx.store.start_run("sweep", ctx.store.get_run(rid)["config"])  # computed again (a refresh): the words stay
    assert ctx.store.get_run(rid)["name"] == "baseline OMP"
    assert overlay_curves(ctx.store, [rid])["run"].unique().tolist() == ["baseline OMP"]
    with pytest.raises(LotusError, match=f"^a run name is one line of at most {NAME_CHARS} characters"):
        annotate_run(ctx.store, rid, "x" * (NAME_CHARS + 1))
    with pytest.raises(LotusError, match=r"^a run name contains control characters \(U\+000A\)"):
        annotate_run(ctx.store, rid, "two\nlines")
    assert annotate_run(ctx.store, rid, "", "")["name"] is None and ctx.store.get_run(rid)["note"] is None  # cleared


def test_two_runs_configurations_are_compared_setting_by_setting(sweep_ctx):
    from lotus_core.views.experiments import config_differences

    ctx = sweep_ctx
    other = run_sweep(ctx, SweepConfig(methods=("omp", "random"), sparsities=(0.0, 0.5), limit=100, eps=0.02))
    diff = config_differences(ctx.store, ctx.sweep.run_id, other.run_id)
    assert diff.to_dict(orient="records") == [{"setting": "eps", "a": "0.01", "b": "0.02"},
                                              {"setting": "methods", "a": '["omp"]', "b": '["omp","random"]'}]
    assert config_differences(ctx.store, other.run_id, other.run_id).empty
    dense = next(i for i, k in zip(run_table(ctx.store)["id"], run_table(ctx.store)["kind"]) if k == "evaluate")
    kinds = config_differences(ctx.store, dense, other.run_id).set_index("setting")
    assert kinds.loc["kind"].tolist() == ['"evaluate"', '"sweep"'] and kinds.loc["methods", "a"] == "(not set)"


def test_legend_entries_wrap_into_short_lines_and_are_escaped():
    from lotus_core.views.experiments import LEGEND_CHARS, legend_name

    assert legend_name("sweep: limit 200, sparsities 0,0.5", "omp") == "sweep: limit 200, sparsities 0,0.5: omp"
    long = "sweep: methods omp,random, sparsities 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    assert legend_name(long, "omp") == ("sweep: methods omp,random, sparsities<br>"
                                        "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9: omp")
    assert legend_name(long, "random").endswith("<br>random")  # two curves of one run differ on screen
    assert legend_name("<b>mine</b> & co", "lth") == "&lt;b&gt;mine&lt;/b&gt; &amp; co: lth"  # a user's run name
    assert all(len(line) <= LEGEND_CHARS for line in legend_name(long, "omp").split("<br>"))


def test_the_legend_is_below_the_chart():
    frame = pd.DataFrame({"run": ["a", "a"], "kind": ["sweep", "sweep"], "series": ["omp", "omp"],
                          "axis": ["sparsity", "sparsity"], "x": [0.0, 0.5], "accuracy": [0.9, 0.8]})
    legend = overlay_figures(frame)["sparsity"].layout.legend
    assert (legend.orientation, legend.yanchor, legend.y < 0) == ("h", "top", True)


def test_a_sweeps_csv_download_fills_its_correct_column(sweep_ctx):
    """Issue 28 §5: the exported CSV's ``correct`` column was empty; each point's count of right answers."""
    table = pd.read_csv(io.StringIO(downloads(sweep_ctx.store, sweep_ctx.sweep.run_id)[0].data()))
    points = table[table["method"].notna()]
    assert len(points) == 1 and points["correct"].notna().all()
    assert (points["correct"] == (points["accuracy"] * points["n"]).round()).all()
    assert points["correct"].tolist() == [round(sweep_ctx.sweep.frame["accuracy"].item() * 100)]  # of limit=100
