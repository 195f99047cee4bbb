"""Paper claims vs measured here: each verdict rule at and around its threshold, on hand-made summaries; and the
Report's claims section from the shipped demo store, computing nothing, with the numbers read from its runs."""
import json
import shutil
import sqlite3

import pytest

from lotus_core.cli import main
from lotus_core.views import claims as c
from lotus_core.views.claims import NOT_COMPARABLE as NC, NOT_REPRODUCED as NR, REPRODUCED as R
from lotus_core.views.demo import DEMO_DB


def test_about_is_five_points_inclusive():
    assert c.about(0.74, 0.79) and c.about(0.84, 0.79)
    assert not c.about(0.7399, 0.79) and not c.about(0.8401, 0.79)


@pytest.mark.parametrize("dataset, accuracy, verdict", [
    ("fashion-mnist", 0.79, NC), ("cifar10", None, NC), ("cifar10", 0.74, R), ("cifar10", 0.84, R),
    ("cifar10", 0.7399, NR), ("cifar10", 0.8401, NR), ("cifar100", 0.79, NC)])
def test_one_shot_30_is_cifar10_only_and_about_79(dataset, accuracy, verdict):
    assert c.one_shot_verdict(dataset, accuracy).verdict == verdict


def _lottery(best: float, at5: float, epochs: int = 5) -> dict:
    return {"epochs": epochs, "best_full_accuracy": best,
            "lottery": {"accuracy": [0.1] * (epochs - 1) + [at5], "final_accuracy": at5}}


@pytest.mark.parametrize("summary, verdict", [
    (None, NC),
    (_lottery(0.89, 0.89, epochs=4), NC),  # stops before epoch 5
    (_lottery(0.8399, 0.8399), NC),  # full arm more than 5 points under the dense 89%: too small
    (_lottery(0.84, 0.83), R),  # exactly 5 points under: comparable; lottery exactly 1 point under the best
    (_lottery(0.84, 0.8299), NR),
    (_lottery(0.341, 0.2485), NC),  # the shipped run
])
def test_convergence_needs_a_trained_run_and_is_within_one_point_at_epoch_5(summary, verdict):
    assert c.convergence_verdict(summary, 0.89).verdict == verdict


def test_the_shipped_lottery_run_is_too_small_and_says_why():
    v = c.convergence_verdict(_lottery(0.341, 0.2485), 0.891)
    assert v.why == ("the stored run is too small to test it: its full-image arm reaches at best 34.1% in 5 epochs "
                     "against the dense model's 89.1% (more than 5 points under), so it never nears a trained model")


@pytest.mark.parametrize("accuracy, verdict", [(None, NC), (0.45, R), (0.55, R), (0.4499, NR), (0.5501, NR),
                                               (0.89, NR)])
def test_issp_at_a_tenth_of_the_data_is_about_50(accuracy, verdict):
    assert c.issp_fraction_verdict(accuracy).verdict == verdict


@pytest.mark.parametrize("sparsity, eps, verdict, where", [
    (None, None, NC, None), (0.5, 0.0101, NC, None), (0.2999, 0.01, NR, None), (0.30, 0.01, R, "inside"),
    (0.50, 0.01, R, "inside"), (0.59, 0.01, R, "above"), (0.30, 0.005, R, "inside")])
def test_essential_range_is_at_least_30_percent_at_one_point(sparsity, eps, verdict, where):
    v = c.essential_verdict(sparsity, eps)
    assert v.verdict == verdict
    if where:
        assert f"{where} the paper's 30-50%" in v.why


def _row(sparsity: float, cosine: float) -> dict:
    return {"sparsity": sparsity, "cosine": cosine, "chance_cosine": 0.5}


@pytest.mark.parametrize("rows, verdict", [
    ([_row(0.2, 0.99), _row(0.51, 0.99)], NC),  # no round inside [30%, 50%]
    ([_row(0.3, 0.9601), _row(0.5, 0.99)], R),
    ([_row(0.3, 0.96), _row(0.5, 0.99)], NR),  # strictly above 96%
    ([_row(0.2, 0.5), _row(0.4, 0.97)], R),  # rounds outside the range do not count
])
def test_cosine_is_strictly_above_96_at_every_round_in_the_range(rows, verdict):
    assert c.cosine_verdict(rows).verdict == verdict


def _pt(acc: float, lo: float, hi: float, sparsity: float = 0.8) -> dict:
    return {"sparsity": sparsity, "accuracy": acc, "ci_low": lo, "ci_high": hi}


@pytest.mark.parametrize("points, verdict, end", [
    ({}, NC, "between 70% and 80%"),
    ({"ISSP": _pt(0.9, 0.88, 0.92), "LTH": _pt(0.85, 0.83, 0.8799), "OMP": _pt(0.8, 0.78, 0.8299)}, R, "intervals"),
    ({"ISSP": _pt(0.9, 0.88, 0.92), "LTH": _pt(0.85, 0.83, 0.88), "OMP": _pt(0.8, 0.78, 0.82)}, NR,
     "not established on these test images"),  # touching intervals are not disjoint
    ({"ISSP": _pt(0.8, 0.78, 0.82), "LTH": _pt(0.9, 0.88, 0.92), "OMP": _pt(0.7, 0.68, 0.72)}, NR, "claimed order"),
])
def test_soup_order_needs_disjoint_intervals(points, verdict, end):
    v = c.ordering_verdict(points)
    assert v.verdict == verdict and v.why.endswith(end)


def test_the_compared_point_is_the_sparsest_all_three_share_in_70_to_80():
    issp = [_pt(0.9, 0, 1, 0.85), _pt(0.9, 0, 1, 0.8), _pt(0.9, 0, 1, 0.75)]
    lth = [_pt(0.8, 0, 1, 0.75), _pt(0.8, 0, 1, 0.85), _pt(0.8, 0, 1, 0.8000000001)]
    omp = [_pt(0.7, 0, 1, 0.75), _pt(0.7, 0, 1, 0.85)]
    points = c.common_point(issp, lth, omp)  # 85% is outside the range; 80% lacks OMP
    assert {k: p["sparsity"] for k, p in points.items()} == {"ISSP": 0.75, "LTH": 0.75, "OMP": 0.75}
    assert c.common_point(issp, lth, []) == {}


@pytest.mark.parametrize("ticket, dense, density, verdict", [
    (None, None, 0.2, NC), (100, None, 0.2, NC), (100, 100, 0.25, NC), (100, 100, 0.0999, NC),
    (100, 100, 0.1, R), (100, 100, 0.2, R), (101, 100, 0.15, NR)])
def test_lth_speed_needs_measured_iterations_at_10_to_20_percent(ticket, dense, density, verdict):
    assert c.training_speed_verdict(ticket, dense, density).verdict == verdict


# ---------------------------------------------------------------------------- the shipped demo store
def _q(db, sql: str):
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def _point(db, run: str, key: str) -> dict:
    return json.loads(_q(db, f"SELECT data FROM points WHERE run_id = '{run}' AND key = '{key}'")[0][0])


def test_the_claims_section_of_the_shipped_demo_computes_nothing_and_states_the_stored_numbers(tmp_path, capsys):
    db = tmp_path / "lotus.db"
    shutil.copy(DEMO_DB, db)
    before = _q(db, "SELECT id, updated FROM runs ORDER BY id")
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(db), "--out", str(out), "--json"]) == 0
    assert _q(db, "SELECT id, updated FROM runs ORDER BY id") == before  # no run added or recomputed
    section = json.loads(capsys.readouterr().out)["sections"][-1]
    assert section["key"] == "claims" and section["title"] == "Paper claims vs measured here"
    assert section["sentence"].startswith("Of 7 claims from the papers LOTUS builds on, 2 reproduced here, 2 did not "
                                          "and 3 cannot be tested by the stored runs")
    rows = {r["key"]: r for r in section["table"]}
    assert list(rows) == list(c.CLAIMS)

    def run_of(kind: str, where: str) -> tuple[str, dict]:
        rid, summary = _q(db, f"SELECT id, summary FROM runs WHERE kind = '{kind}' AND {where}")[0]
        return rid, json.loads(summary)

    sweep, ess = run_of("sweep", "json_extract(config, '$.refine') = 1")  # the refined OMP sweep
    at30 = _point(db, sweep, "omp@0.3000")["accuracy"]
    assert (rows["one-shot-30"]["value"], rows["one-shot-30"]["verdict"], rows["one-shot-30"]["runs"]) == (at30, NC, [sweep])
    assert at30 == 0.891 and "this model is evaluated on fashion-mnist" in rows["one-shot-30"]["why"]

    lottery, summary = run_of("lottery-train", "1")
    assert summary["best_full_accuracy"] == 0.341 and summary["lottery"]["final_accuracy"] == 0.2485
    assert (rows["lottery-epoch-5"]["verdict"], rows["lottery-epoch-5"]["runs"]) == (NC, [lottery])
    assert rows["lottery-epoch-5"]["why"].startswith("the stored run is too small to test it: its full-image arm "
                                                     "reaches at best 34.1% in 5 epochs against the dense model's 89.1%")

    issp10, _ = run_of("issp", "json_extract(config, '$.data_fraction') = 0.1")
    final = _point(db, issp10, "final")["accuracy"]
    assert (rows["issp-data-fraction"]["value"], rows["issp-data-fraction"]["verdict"]) == (final, NR) and final == 0.89
    assert rows["issp-data-fraction"]["runs"] == [issp10]

    assert ess["essential"]["omp"]["essential_sparsity"] == rows["essential-range"]["value"] == 0.59
    assert (rows["essential-range"]["verdict"], rows["essential-range"]["why"]) == (R, "59% is free at 1 point, above "
                                                                                     "the paper's 30-50%")

    table, omp_vs = run_of("omp-vs-ticket", "1")
    inside = [r for r in omp_vs["rows"] if r["layer"] == "all" and 0.3 <= r["sparsity"] <= 0.5]
    assert [round(r["sparsity"], 3) for r in inside] == [0.36, 0.488]
    assert rows["omp-lth-cosine"]["value"] == min(r["cosine"] for r in inside) > 0.96
    assert (rows["omp-lth-cosine"]["verdict"], rows["omp-lth-cosine"]["runs"]) == (R, [table])

    issp_full, _ = run_of("issp", "json_extract(config, '$.data_fraction') = 1.0")
    lth, _ = run_of("lth", "1")
    ft, _ = run_of("sweep", "json_extract(config, '$.finetune_steps') = 100")
    a, b, o = _point(db, issp_full, "final"), _point(db, lth, "round-8"), _point(db, ft, "omp@0.8000")
    assert (a["accuracy"], b["accuracy"], o["accuracy"]) == (0.8875, 0.8845, 0.8785)
    assert a["ci_low"] < b["ci_high"]  # overlapping intervals: the order is not established
    assert rows["soup-order"]["lotus"] == "ISSP 88.8%, LTH 88.4%, OMP 87.8% at 80.0% (ISSP at data fraction 1)"
    assert (rows["soup-order"]["verdict"], rows["soup-order"]["runs"]) == (NR, [issp_full, lth, ft])

    assert (rows["lth-speed"]["verdict"], rows["lth-speed"]["runs"]) == (NC, [lth])
    assert rows["lth-speed"]["why"].startswith("no stored run measures how fast a ticket trains")

    page = out.read_text()
    assert page.count('<table class="claims">') == 1 and "<th>Paper&#x27;s number</th>" in page
    assert "<td>ISSP 88.8%, LTH 88.4%, OMP 87.8% at 80.0% (ISSP at data fraction 1)</td>" in page


@pytest.mark.parametrize("sparsity, eps, why", [
    (0.5, 0.02, "the stored turning point allows 2 points, the claim 1 point"),
    (0.2, 0.01, "only 20% is free at 1 point, under 30%"),
    (0.4, 0.005, "40% is free at 0.5 points, inside the paper's 30-50%"),
])
def test_the_essential_verdict_states_eps_in_points_singular_or_plural(sparsity, eps, why):
    assert c.essential_verdict(sparsity, eps).why == why


def test_the_other_verdicts_state_their_margins_in_points():
    assert c.one_shot_verdict("cifar10", 0.70).why == "70.0% is more than 5 points from 79%"
    assert c.issp_fraction_verdict(0.5).why == "its ticket ends at 50.0%, within 5 points from 50%"
    assert c.convergence_verdict(_lottery(0.84, 0.83), 0.89).why == ("at epoch 5 the lottery arm has 83.0%, within 1 "
                                                                    "point of the best full-image 84.0%")
