"""The stakeholder report: each section states the stored number its figure shows, missing results
name the page that produces them, the HTML export is self-contained; and the report/delete CLI."""
import dataclasses
import json
import re
import sqlite3

import pytest

from lotus_core.cli import main
from lotus_core.core.errors import LotusError
from lotus_core.views.experiments import headline
from lotus_core.views.catalog import omp_vs_tickets
from lotus_core.lottery.issp import ISSPConfig, run_issp
from lotus_core.lottery.lth import LTHConfig, run_lth
from lotus_core.patches.ticket_training import LotteryTrainConfig, run_lottery_train
from lotus_core.patches.analysis import class_indices, explain_images
from lotus_core.views.report import SECTIONS, ReportOptions, Stored, build_report, pinned, results_version, set_pinned
from lotus_core.results.runs import run_experiment
from lotus_core.results.store import Store
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from lotus_core.speed.run import SpeedConfig, run_speed

OPTIONS = ReportOptions(limit=100, example_class=3, example_images=2)
KEYS = ["dense", "essential", "similarity", "comparison", "patches", "convergence", "speed", "claims"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


@pytest.fixture
def full_ctx(tiny_ctx):
    """tiny_ctx with every result the report draws on: a sweep, LTH, ISSP and lottery training."""
    ctx = tiny_ctx
    ctx.results = {
        "sweep": run_sweep(ctx, SweepConfig(methods=("omp", "random"), sparsities=(0.25, 0.5, 0.75), limit=100)),
        "lth": run_experiment(ctx, "lth", LTHConfig(target=0.4, prune_fraction=0.25, steps=1, batch_size=8, limit=100),
                              run_lth),
        "issp": run_experiment(ctx, "issp", ISSPConfig(target=0.3, per_round=0.3, denoisers=1, lookahead_steps=1,
                                                       data_fraction=0.05, finetune_steps=1, batch_size=8, limit=100),
                               run_issp),
        "speed": run_speed(ctx, SpeedConfig(methods=("masked", "heads"), batch_sizes=(1, 4), best_batch=False, sparsities=(0.5,),
                                            ratios=(0.5,), limit=100, min_run_time=0.01)),
        "lottery": run_experiment(ctx, "lottery-train", LotteryTrainConfig(epochs=2, steps_per_epoch=1, batch_size=8,
                                                                           fraction=0.05, limit=100), run_lottery_train),
    }
    return ctx


def test_an_empty_store_gives_dense_and_patches_and_names_the_pages_for_the_rest(tiny_ctx):
    report = build_report(tiny_ctx, OPTIONS)
    assert [s.key for s in report.sections] == KEYS and len(SECTIONS) == len(KEYS)
    missing = {s.key: s.missing for s in report.sections}
    assert missing == {"dense": None, "essential": "Sparsity curves", "similarity": "Soup", "comparison": "Soup",
                       "patches": None, "convergence": "Patches", "speed": "Speed", "claims": None}
    essential = report.section("essential")
    assert essential.sentence == ("Missing: no sparsity curve is stored for this model yet; produce it on the "
                                  "Sparsity curves page (measured on the sidebar's number of test images, the one "
                                  "this report uses).")
    assert essential.figure is None and essential.value is None
    assert "produce it on the Patches page" in report.section("convergence").sentence
    dense = tiny_ctx.dense_accuracy(limit=100)
    assert report.section("dense").value == dense["accuracy"]
    assert f"labels {_pct(dense['accuracy'])} of 100 test images correctly" in report.section("dense").sentence


def test_every_section_states_the_stored_number_it_shows(full_ctx):
    ctx, res = full_ctx, full_ctx.results
    report = build_report(ctx, OPTIONS)
    assert all(s.missing is None and (s.figure is not None or s.table) for s in report.sections), report.to_dict()
    assert [s.key for s in report.sections if s.figure is None] == ["claims"]  # a table, no figure

    sweep = res["sweep"]
    ess = sweep.essential["omp"]["essential_sparsity"]
    section = report.section("essential")
    assert section.value == ess
    assert section.sentence.startswith(f"Pruning the {100 * ess:.0f}% least important weights at once with OMP "
                                       f"(one-shot global magnitude) keeps accuracy within 1 point of the unpruned "
                                       f"{_pct(sweep.dense['accuracy'])}")
    assert len(section.figure.data) >= 2  # omp and random curves

    table = omp_vs_tickets(ctx, res["lth"]["run_id"])
    last = table[table["layer"] == "all"].iloc[-1]  # the overall similarity of the last round
    section = report.section("similarity")
    assert section.value == last["cosine"]
    assert (f"cosine similarity of {_pct(last['cosine'])}; two random masks of the same layer-by-layer densities "
            f"would reach {_pct(last['chance_cosine'])}") in section.sentence

    section = report.section("comparison")
    assert section.value == res["lth"]["final_accuracy"]
    assert f"LTH {_pct(res['lth']['final_accuracy'])} at {_pct(res['lth']['final_sparsity'])} sparsity" in section.sentence
    assert f"ISSP {_pct(res['issp']['final_accuracy'])} at {_pct(res['issp']['final_sparsity'])}" in section.sentence
    names = [t.name for t in section.figure.data]
    assert names == ["OMP one-shot, no re-training", "LTH rounds (re-trained each round)",
                     "ISSP rounds (before the final fine-tune)", "ISSP after its final fine-tune"]

    explained = explain_images(ctx, "cls", 0.1, indices=class_indices(ctx.test, 3, 2))
    section = report.section("patches")
    assert section.value == explained.unchanged_lottery / 2
    assert section.sentence.endswith(f"leaves its answer unchanged on {explained.unchanged_lottery} of 2 example "
                                     "class3 images.")

    lottery = res["lottery"]
    section = report.section("convergence")
    assert section.value == lottery["lottery"]["final_accuracy"]
    assert (f"reaches {_pct(lottery['lottery']['final_accuracy'])} after 2 epochs, against "
            f"{_pct(lottery['full']['final_accuracy'])} on full images") in section.sentence
    assert (f" On the test images' own tickets it scores {_pct(lottery['lottery']['final_ticket_accuracy'])} (the "
            f"full-image model: {_pct(lottery['full']['final_ticket_accuracy'])})") in section.sentence

    speed = res["speed"].at(4)  # the largest batch size
    fast = speed[(speed["drop"] <= 0.01) & (speed["method"] != "dense") & speed["reliable"]]
    section = report.section("speed")
    dense_row = speed[speed["method"] == "dense"].iloc[0]
    threads = int(dense_row["threads"])
    assert section.sentence.startswith(f"On {dense_row['device']} with {threads} thread{'s' * (threads != 1)}, at batch 4")
    if not speed["reliable"].all() and fast.empty:  # a busy machine: nothing is quoted
        assert section.value is None and "nothing is quoted" in section.sentence
    elif fast.empty:
        assert section.value == 1.0 and "none runs faster at that accuracy" in section.sentence
    else:
        best = fast.loc[fast["speedup"].idxmax()]
        assert section.value == best["speedup"]
        assert f"is {best['method']} {best['setting']}: {best['speedup']:.2f}x the dense speed" in section.sentence
    masked = speed[(speed["method"] == "masked") & speed["reliable"]]["speedup"]
    if len(masked):  # quoted only when reliably measured (this machine's load decides)
        assert f"the masked dense model runs at {masked.iloc[0]:.2f}x to {masked.iloc[0]:.2f}x" in section.sentence
    else:
        assert "Zeros alone" not in section.sentence
    assert [t.name for t in section.figure.data] == ["dense", "masked", "heads", "Pareto frontier"]


def test_the_similarity_is_computed_once_and_then_read_from_the_store(full_ctx, monkeypatch):
    first = build_report(full_ctx, OPTIONS).section("similarity")
    stored = full_ctx.store.runs(kind="omp-vs-ticket")
    assert len(stored) == 1 and stored["config"].item()["run"] == full_ctx.results["lth"]["run_id"]
    assert stored["config"].item()["rounds"] == [0, 1, 2]
    last = [r for r in stored["summary"].item()["rows"] if r["layer"] == "all"][-1]
    assert last["cosine"] == first.value
    assert headline("omp-vs-ticket", stored["summary"].item()).text == (  # its row on the Experiments page
        f"OMP vs ticket at {_pct(last['sparsity'])}: cosine {_pct(last['cosine'])} (chance {_pct(last['chance_cosine'])})")

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr("lotus_core.views.catalog.round_masks", fail)  # the computation, not the lookup
    again = build_report(full_ctx, OPTIONS).section("similarity")
    assert (again.value, again.sentence) == (first.value, first.sentence)


def test_a_data_fraction_sweep_of_issp_is_summarised_fraction_by_fraction(full_ctx):
    single = build_report(full_ctx, OPTIONS).section("comparison")
    assert "by the fraction of training data" not in single.sentence  # one fraction: nothing to compare
    base = ISSPConfig(target=0.3, per_round=0.3, denoisers=1, lookahead_steps=1, data_fraction=0.05, finetune_steps=1,
                      batch_size=8, limit=100)
    another = run_experiment(full_ctx, "issp", dataclasses.replace(base, data_fraction=0.2, denoisers=2), run_issp)
    other = run_experiment(full_ctx, "issp", dataclasses.replace(base, data_fraction=0.5), run_issp)  # the newest
    assert build_report(full_ctx, OPTIONS).section("comparison").sentence == single.sentence  # not pinned: unchanged
    set_pinned(full_ctx, another["run_id"])
    set_pinned(full_ctx, other["run_id"])
    sentence = build_report(full_ctx, OPTIONS).section("comparison").sentence
    first = full_ctx.results["issp"]["final_accuracy"]
    assert (" ISSP's final accuracy by the fraction of training data each look-ahead saw: "
            f"5%: {_pct(first)}, 50%: {_pct(other['final_accuracy'])} (LOTUS saw about 50% with 10%).") in sentence


def test_a_first_report_pins_what_it_chose_and_other_limits_are_flagged_not_mixed(tiny_ctx):
    """One protocol on a first report: a ticket measured on 50 images is not chosen beside a 100-image dense
    line and sweep. Once pinned, a run on another number of test images is used only when pinned, and then
    the report says the pinned runs disagree."""
    sweep = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.25, 0.5), limit=100))
    lth = run_experiment(tiny_ctx, "lth", LTHConfig(target=0.4, prune_fraction=0.25, steps=1, batch_size=8, limit=50),
                         run_lth)
    report = build_report(tiny_ctx, OPTIONS)
    assert report.section("essential").missing is None and report.warnings == []
    assert report.section("similarity").missing == "Soup" and report.section("comparison").missing == "Soup"
    dense_id = report.section("dense").runs[0]["run"]
    assert set(pinned(tiny_ctx)) == {dense_id, sweep.run_id}
    set_pinned(tiny_ctx, lth["run_id"])
    report = build_report(tiny_ctx, OPTIONS)
    assert report.section("similarity").missing is None
    assert report.warnings == [f"Pinned runs disagree on test-set size (100: evaluate {dense_id}, sweep {sweep.run_id}; "
                               f"50: lth {lth['run_id']}): their numbers are not comparable; pin runs that agree on "
                               "the Experiments page."]
    assert report.to_dict()["warnings"] == report.warnings
    assert "Pinned runs disagree on test-set size" in report.to_html()


def test_trying_other_settings_never_changes_the_report_until_pinned(tiny_ctx):
    """The Report keeps its story: a newer sweep (another eps, another method) is ignored until it is pinned;
    unpinning goes back; pins live in the store, not in the process."""
    first = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.25, 0.5, 0.75), limit=100))
    before = build_report(tiny_ctx, OPTIONS).section("essential")
    newer = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.25, 0.5), limit=100, eps=0.02))
    assert build_report(tiny_ctx, OPTIONS).section("essential").sentence == before.sentence
    set_pinned(tiny_ctx, newer.run_id)
    after = build_report(tiny_ctx, OPTIONS).section("essential")
    assert after.runs[0]["run"] == newer.run_id and after.value == newer.essential["omp"]["essential_sparsity"]
    assert "within 2 point" in after.sentence
    assert Store(tiny_ctx.store.path).pins(tiny_ctx.model_id)[newer.run_id] is True
    set_pinned(tiny_ctx, newer.run_id, False)
    assert build_report(tiny_ctx, OPTIONS).section("essential").runs[0]["run"] == first.run_id


def test_each_number_names_its_run_and_where_it_was_computed(full_ctx):
    from lotus_core.results.runs import provenance_label

    report = build_report(full_ctx, OPTIONS)
    res = full_ctx.results
    runs = {s.key: [r["run"] for r in s.runs] for s in report.sections}
    assert runs["essential"] == [res["sweep"].run_id] and runs["similarity"] == [res["lth"]["run_id"]]
    assert runs["comparison"] == [res["lth"]["run_id"], res["issp"]["run_id"], res["sweep"].run_id]
    assert runs["convergence"] == [res["lottery"]["run_id"]] and runs["speed"] == [res["speed"].run_id]
    section = report.section("essential")
    label = provenance_label(full_ctx, res["sweep"].run_id)
    assert section.runs[0] == {"run": res["sweep"].run_id, "kind": "sweep", "provenance": label}
    assert label.startswith("computed in ") and " on cpu (" in label and "1 thread," in label
    assert f"Run {res['sweep'].run_id} (sweep): {label}" in report.to_html()
    assert report.to_dict()["sections"][1]["runs"] == section.runs


def test_results_version_changes_when_a_result_is_stored(tiny_ctx):
    before = results_version(tiny_ctx)
    assert before == results_version(tiny_ctx)
    tiny_ctx.dense_accuracy(limit=20)
    assert results_version(tiny_ctx)[3] == before[3] + 1


def test_html_export_is_self_contained_with_one_inline_plotly(full_ctx):
    report = build_report(full_ctx, OPTIONS)
    text = report.to_html()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert text.count("* plotly.js v") == 1  # the library itself, inline, once
    assert not re.search(r"<script[^>]+src=", text)  # no CDN, no external script
    assert text.count('class="plotly-graph-div"') == len(report.sections) - 1 == 7  # the claims are a table
    assert text.count('<table class="claims">') == 1
    for section in report.sections:
        assert section.sentence.replace("&", "&amp;").replace("'", "&#x27;") in text


def test_the_essential_section_prefers_a_refined_sweep_to_a_newer_coarse_one(tiny_ctx):
    refined = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.25, 0.5, 0.75), limit=100, refine=True))
    run_sweep(tiny_ctx, SweepConfig(methods=("omp", "random"), sparsities=(0.5,), limit=100))  # newer, coarse
    section = build_report(tiny_ctx, OPTIONS).section("essential")
    assert section.value == refined.essential["omp"]["essential_sparsity"]
    assert [t.name for t in section.figure.data if t.mode == "lines+markers"] == ["omp"]


def test_a_broken_stored_result_is_a_note_not_a_failure(tiny_ctx):
    store = tiny_ctx.store
    run_id = store.start_run("sweep", tiny_ctx.key(kind="sweep", broken=True), tiny_ctx.model_id, tiny_ctx.dataset)
    store.finish_run(run_id, {"dense": {"accuracy": 0.5}, "essential": {"omp": {}}, "run_id": run_id})
    report = build_report(tiny_ctx, OPTIONS)
    section = report.section("essential")
    assert section.missing == "Sparsity curves" and section.figure is None
    assert section.sentence.startswith("This section could not be built from the stored results (KeyError")
    assert section.sentence.endswith("produce them again on the Sparsity curves page.")


def test_cli_report_writes_the_html_and_prints_the_sections(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(tmp_path / "r.db"), "--out", str(out), "--limit", "200", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["bytes"] == len(out.read_bytes())
    assert [s["key"] for s in result["sections"]] == KEYS
    assert [s["missing"] for s in result["sections"]] == [None, "Sparsity curves", "Soup", "Soup", None, "Patches",
                                                                "Speed", None]
    dense = Store(tmp_path / "r.db").runs(kind="evaluate")["summary"].item()
    assert result["sections"][0]["value"] == dense["accuracy"] and dense["n"] == 200
    assert result["sections"][0]["sentence"] in out.read_text()


@pytest.mark.parametrize("argv, message", [
    (["report", "--example-class", "10"], "lotus report: error: --example-class 10 is outside 0..9\n"),
    (["report", "--limit", "200", "--out", "/nonexistent-dir/r.html"],
     "lotus report: error: --out /nonexistent-dir/r.html: folder /nonexistent-dir does not exist; create it or pick another path\n"),
    (["delete", "0123abcd"], "lotus delete: error: no results store at {db}; check --db / LOTUS_DB (a store is "
                             "created by the first command that computes something)\n"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    db = tmp_path / "e.db"
    assert main(argv + ["--db", str(db)]) == 2
    captured = capsys.readouterr()
    assert captured.err == message.format(db=db) and captured.out == ""


def test_cli_delete_removes_a_run(tmp_path, capsys):
    store = Store(tmp_path / "d.db")
    run_id = store.start_run("evaluate", {"limit": 1})
    store.finish_run(run_id, {"accuracy": 0.5})
    assert main(["delete", run_id[:6], "--db", str(store.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"deleted": run_id, "kind": "evaluate", "status": "done"}
    assert store.get_run(run_id) is None
    store.start_run("lth", {"x": 1})  # running
    assert main(["delete", store.runs()["id"].item(), "--db", str(store.path)]) == 2
    assert capsys.readouterr().err.endswith("is running; cancel it first, then delete it\n")


def test_an_unfinished_lottery_training_shows_its_finished_epochs(tiny_ctx):
    cfg = LotteryTrainConfig(epochs=1, steps_per_epoch=1, batch_size=8, fraction=0.05, limit=100)
    summary = run_experiment(tiny_ctx, "lottery-train", cfg, run_lottery_train)
    tiny_ctx.store.set_status(summary["run_id"], "running")  # as while its worker trains epoch 2
    section = build_report(tiny_ctx, OPTIONS).section("convergence")
    lottery, full = summary["lottery"]["accuracy"][0], summary["full"]["accuracy"][0]
    assert section.value == lottery and section.figure is not None
    assert section.sentence == (f"After 1 finished epoch of a run that is running: lottery tickets {_pct(lottery)}, "
                                f"full images {_pct(full)}.")


def test_cli_annotate_names_a_run_and_diff_lists_what_differs(tmp_path, capsys):
    store = Store(tmp_path / "a.db")
    a = store.start_run("evaluate", {"limit": 100, "seed": 0})
    b = store.start_run("evaluate", {"limit": 200, "seed": 0})
    assert main(["annotate", a[:6], "--name", "small subset", "--note", "quick look", "--db", str(store.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": a, "kind": "evaluate", "name": "small subset", "note": "quick look"}
    assert main(["annotate", a, "--note", "", "--db", str(store.path), "--json"]) == 0  # the name is kept, the note cleared
    assert json.loads(capsys.readouterr().out)["name"] == "small subset" and store.get_run(a)["note"] is None
    assert main(["runs", "--db", str(store.path), "--json"]) == 0
    runs = {r["id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert (runs[a]["name"], runs[b]["name"], runs[b]["note"]) == ("small subset", None, None)
    assert main(["diff", a, b[:6], "--db", str(store.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"a": a, "b": b, "differences": [
        {"setting": "limit", "a": "100", "b": "200"}]}
    assert main(["annotate", a, "--name", "a\nb", "--db", str(store.path)]) == 2
    assert capsys.readouterr().err == ("lotus annotate: error: a run name contains control characters (U+000A); use "
                                       "printable text only\n")


@pytest.mark.parametrize("error", [TypeError("a bug"), LotusError("a bug")])
def test_an_error_in_a_section_that_is_not_a_missing_result_surfaces(tiny_ctx, monkeypatch, error):
    """Only "not stored yet" (NotStored) becomes a section's note: a programming error (or any other LotusError)
    raised while a section is built fails the build, so tests see it."""
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("lotus_core.views.report.sparsity.per_class_accuracy", broken)  # the dense section's figure
    with pytest.raises(type(error), match="a bug"):
        build_report(tiny_ctx, OPTIONS)


def test_a_pinned_sweep_is_reported_at_the_eps_it_was_computed_with(tiny_ctx):
    """eps is a fraction in the store (0.02) and points in the report ("2 points"), read off the sweep's stored
    config: the essential sentence, its chart's band, the claims row and its verdict all state 2 points."""
    sweep = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.25, 0.5), limit=100, eps=0.02))
    assert Stored(tiny_ctx, 100).eps == 0.02
    report = build_report(tiny_ctx, OPTIONS)
    essential = report.section("essential")
    assert essential.runs[0]["run"] == sweep.run_id
    assert (f"keeps accuracy within 2 points of the unpruned {_pct(sweep.dense['accuracy'])}: this turning point"
            in essential.sentence)
    assert any("within 2 points" in (a.text or "") for a in essential.figure.layout.annotations)  # the shaded band
    row = next(r for r in report.section("claims").table if r["key"] == "essential-range")
    ess = sweep.essential["omp"]["essential_sparsity"]
    assert row["lotus"] == f"{100 * ess:.0f}% free within 2 points (OMP turning point)"
    assert (row["verdict"], row["why"]) == ("not comparable", "the stored turning point allows 2 points, the claim 1 point")


def test_a_sweep_stored_without_its_eps_is_unreadable_not_read_at_a_default(tiny_ctx):
    sweep = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.25, 0.5), limit=100, eps=0.02))
    with sqlite3.connect(tiny_ctx.store.path) as con:  # as a run written without the field would be
        con.execute("UPDATE runs SET config = json_remove(config, '$.eps') WHERE id = ?", (sweep.run_id,))
    section = build_report(tiny_ctx, OPTIONS).section("essential")
    assert section.missing == "Sparsity curves" and section.value is None
    assert section.sentence == (f"This section could not be built from the stored results (KeyError: 'eps' in stored "
                                f"sweep run {sweep.run_id}); produce them again on the Sparsity curves page.")


def test_the_version_a_page_keeps_a_report_under_is_read_after_the_dense_accuracy_is_stored(tiny_ctx):
    """results_version(ctx, limit) stores the dense accuracy on ``limit`` images first (the one result building
    a report computes), so building the report adds no run to the version it is kept under (a first report
    pins what it chose: that changes it once)."""
    version = results_version(tiny_ctx, 100)
    assert tiny_ctx.store.runs(kind="evaluate")["config"].map(lambda c: c["limit"]).tolist() == [100]
    build_report(tiny_ctx, OPTIONS)
    pinned_once = results_version(tiny_ctx, 100)
    assert pinned_once[:5] == version[:5] and pinned_once[5] != version[5] == ()  # the runs as they were; pins
    build_report(tiny_ctx, OPTIONS)
    assert results_version(tiny_ctx, 100) == pinned_once
    assert results_version(tiny_ctx, 20)[3] == version[3] + 1  # another limit: its dense accuracy is stored
