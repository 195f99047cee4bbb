import json

import pandas as pd
import pytest

from lotus_core.cli import main
from lotus_core.core.errors import LotusError
from lotus_core.results.registry import experiments
from lotus_core.results.runs import run_id_for
from lotus_core.pruning.sweep import SweepConfig, essential_sparsity, layer_sparsity_table, parse_sparsities, run_sweep
from lotus_core.pruning import prune


def test_turning_point_rule_and_bracket():
    curve = [(0.1, 0.90), (0.2, 0.895), (0.3, 0.885), (0.4, 0.87), (0.5, 0.6)]
    ess = essential_sparsity(curve, dense_accuracy=0.90, eps=0.01)
    # 0.885 < 0.90 - 0.01 is the first drop, so the turning point is the sparsity before it
    assert ess.essential_sparsity == 0.2 and ess.bracket == (0.2, 0.3) and ess.monotone and not ess.recovers
    never = essential_sparsity([(0.1, 0.9), (0.2, 0.899)], 0.9)
    assert never.essential_sparsity == 0.2 and never.bracket == (0.2, None)
    first = essential_sparsity([(0.1, 0.5)], 0.9)
    assert first.essential_sparsity == 0.0 and first.bracket == (0.0, 0.1)
    frame = pd.DataFrame(curve[::-1], columns=["sparsity", "accuracy"])  # a table, in any order
    assert essential_sparsity(frame, 0.90, 0.01) == ess


def test_non_monotone_curve_uses_the_first_drop_and_says_so():
    curve = [(0.1, 0.91), (0.2, 0.88), (0.3, 0.895), (0.4, 0.80)]
    ess = essential_sparsity(curve, 0.90, 0.01)
    assert ess.essential_sparsity == 0.1 and ess.bracket == (0.1, 0.2)
    assert not ess.monotone and ess.recovers


def test_parse_sparsities():
    assert parse_sparsities("0:0.9:0.1") == tuple(round(0.1 * i, 1) for i in range(10))
    assert parse_sparsities("0.5,0.1") == (0.1, 0.5)
    with pytest.raises(LotusError, match="outside"):
        parse_sparsities("0:1:0.5")
    with pytest.raises(LotusError, match="cannot read"):
        parse_sparsities("a:b")


def test_refinement_finds_the_fine_grid_point_with_fewer_evaluations(trained_tiny_ctx):
    tiny_ctx = trained_tiny_ctx
    fine = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=tuple(i / 100 for i in range(1, 100)),
                                           limit=100, eps=0.05))
    coarse = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), limit=100, eps=0.05, refine=True, resolution=0.01))
    f, c = fine.essential["omp"], coarse.essential["omp"]
    assert c["bracket"][1] - c["bracket"][0] <= 0.01 + 1e-9
    # bisection on the 0.01 grid lands on the fine grid's own turning point and bracket
    assert c["essential_sparsity"] == f["essential_sparsity"] and c["bracket"] == f["bracket"]
    assert c["evaluations"] <= 9 + 5 < f["evaluations"] == 99  # a 0.1 bracket halves to 0.01 in at most 5 steps
    assert all(round(100 * s, 6) == round(100 * s) for s in coarse.frame["sparsity"])  # refined points are on the grid
    assert coarse.frame["refined"].sum() == c["evaluations"] - 9



def test_stopping_the_grid_at_the_first_drop_locates_the_same_turning_point(trained_tiny_ctx):
    base = dict(methods=("omp",), limit=100, eps=0.05, refine=True)
    full = run_sweep(trained_tiny_ctx, SweepConfig(**base))
    short = run_sweep(trained_tiny_ctx, SweepConfig(**base, stop_at_drop=True))
    assert short.essential["omp"]["bracket"] == full.essential["omp"]["bracket"]
    grid = full.frame[~full.frame["refined"]]
    first_drop = grid.loc[grid["accuracy"] < full.dense["accuracy"] - 0.05, "sparsity"].min()
    assert short.frame.loc[~short.frame["refined"], "sparsity"].tolist() == \
        [s for s in grid["sparsity"] if s <= first_drop]
    assert short.essential["omp"]["evaluations"] < full.essential["omp"]["evaluations"]

def test_sweep_points_are_stored_resumed_and_served_from_the_store(tiny_ctx, monkeypatch):
    config = SweepConfig(methods=("omp", "random"), sparsities=(0.2, 0.5, 0.8), limit=50)
    calls = []
    import lotus_core.pruning.sweep as sweep_mod

    real = sweep_mod.PointEvaluator.pruned_model
    monkeypatch.setattr(sweep_mod.PointEvaluator, "pruned_model",
                        lambda self, mask: calls.append(round(mask.sparsity, 2)) or real(self, mask))

    def interrupt(fields):
        if fields["done"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny_ctx, config, on_progress=interrupt)
    rid = run_id_for(tiny_ctx, "sweep", config)
    assert len(tiny_ctx.store.points(rid)) == 4 and tiny_ctx.store.get_run(rid)["status"] == "interrupted"
    result = run_sweep(tiny_ctx, config)
    assert len(calls) == 6  # the 4 finished points were not recomputed
    assert list(result.frame["method"]) == ["omp"] * 3 + ["random"] * 3
    assert list(result.frame["sparsity"]) == [0.2, 0.5, 0.8] * 2
    assert run_sweep(tiny_ctx, config).frame.equals(result.frame) and len(calls) == 6
    # a point shared with another sweep is not computed again either
    run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.5, 0.6), limit=50))
    assert len(calls) == 7


def test_finetuned_sweep_keeps_the_mask(tiny_ctx):
    res = run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.5,), limit=50, finetune_steps=3))
    assert res.frame["sparsity_reached"].tolist() == [0.5]


def test_layer_sparsity_table(tiny_vit):
    table = layer_sparsity_table(prune(tiny_vit, "omp-layerwise", 0.5))
    assert list(table["kind"]) == ["qkv", "proj", "fc1", "fc2"] * 2
    assert list(table["block"]) == [0] * 4 + [1] * 4
    assert table["sparsity"].tolist() == [0.5] * 8


def test_essential_cli_reads_a_csv(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("sparsity,accuracy\n0,0.9\n0.1,0.9\n0.2,0.895\n0.3,0.85\n")
    assert main(["essential", "--curve", str(tmp_path / "c.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["essential_sparsity"] == 0.2 and out["bracket"] == [0.2, 0.3]
    (tmp_path / "bad.csv").write_text("sparsity,acc\n0,0.9\n")
    assert main(["essential", "--curve", str(tmp_path / "bad.csv")]) == 2
    assert "lacks column(s) accuracy" in capsys.readouterr().err
    (tmp_path / "nodense.csv").write_text("sparsity,accuracy\n0.1,0.9\n")
    assert main(["essential", "--curve", str(tmp_path / "nodense.csv")]) == 2
    assert "no row with sparsity 0" in capsys.readouterr().err


def test_prune_and_sweep_cli_on_the_default_model(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    assert main(["prune", "--method", "omp", "--sparsity", "0.5", "--limit", "200", "--db", db,
                 "--mask-out", str(tmp_path / "m.safetensors"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sparsity"] == 0.5 and out["n"] == 200 and len(out["per_layer"]) == 24
    assert (tmp_path / "m.safetensors").exists()
    assert main(["sweep", "--methods", "omp,nm", "--sparsities", "0.3,0.6", "--limit", "200", "--db", db,
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(p["method"], p["sparsity"]) for p in out["points"]] == [("nm", 0.5), ("omp", 0.3), ("omp", 0.6)]
    assert set(out["essential"]) == {"omp", "nm"}
    with pytest.raises(SystemExit) as refused:  # refused while parsing, before anything loads
        main(["sweep", "--methods", "omp", "--sparsities", "0.3,1.0", "--db", db])
    assert refused.value.code == 2 and "outside [0, 1)" in capsys.readouterr().err
    assert main(["sweep", "--search", "bisect", "--limit", "200", "--db", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ess, points = out["essential"]["omp"], out["points"]
    assert ess["bracket"][1] - ess["bracket"][0] == pytest.approx(0.01) and ess["evaluations"] == len(points)
    assert ess["decided_early"] == sum(p["accuracy"] is None for p in points) == sum(p["early"] for p in points)
    assert ess["images"] == sum(p["seen"] for p in points) < 200 * len(points)


def test_fine_tuned_sweep_runs_as_a_background_job(tmp_path):
    from lotus_core import jobs
    from lotus_core.context import open_context

    ctx = open_context(db=tmp_path / "r.db")
    config = SweepConfig(methods=("omp",), sparsities=(0.6,), limit=100, finetune_steps=2)
    run_id = jobs.submit(jobs.context_spec(ctx, "default"), "sweep", config, ctx)  # runs now ($LOTUS_JOBS_IMMEDIATE)
    run = ctx.store.get_run(run_id)
    assert run["status"] == "done" and run["kind"] == "sweep" and experiments()["sweep"].config_cls is SweepConfig
    (point,) = ctx.store.points(run_id).values()
    assert point["sparsity"] == 0.6 and point["n"] == 100
    assert point["sparsity_reached"] == prune(ctx.model, "omp", 0.6).sparsity
    assert run_sweep(ctx, config).frame["accuracy"].tolist() == [point["accuracy"]]  # served from the store


def test_fp32_cli_flag_evaluates_without_autocast(tmp_path, capsys):
    """--fp32 gives the fp32 accuracy of the same pruned model (and is stored apart from the bf16 point)."""
    from lotus_core.context import open_context
    from lotus_core.pruning import prune

    db = str(tmp_path / "r.db")
    assert main(["prune", "--method", "omp", "--sparsity", "0.7", "--limit", "300", "--db", db, "--fp32",
                 "--json"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    ctx = open_context(db=db)
    pruned = prune(ctx.model, "omp", 0.7).apply(ctx.model)
    assert fp32["accuracy"] == ctx.evaluate(pruned, limit=300, bf16=False).accuracy
    assert [c.get("precision") for c in ctx.store.runs(kind="prune-eval")["config"]] == ["fp32"]
    assert main(["prune", "--method", "omp", "--sparsity", "0.7", "--limit", "300", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == ctx.evaluate(pruned, limit=300, bf16=True).accuracy


# ---------------------------------------------------------------------------- bisection with early decisions
import dataclasses  # noqa: E402
import random  # noqa: E402
import uuid  # noqa: E402

import torch  # noqa: E402

import lotus_core.pruning.sweep as sweep_mod  # noqa: E402
import lotus_core.pruning.sweep.points as sweep_points  # noqa: E402  (where points are decided and predicted)
from lotus_core.context import Context  # noqa: E402
from lotus_core.pruning.essential import bisect_decisions, bisect_turning_point, cost_split, resolution_grid  # noqa: E402,E501
from lotus_core.results.store import Store  # noqa: E402
from lotus_core.training.evaluate import EvalResult, decide_in_batches, wilson_interval  # noqa: E402

FINE = resolution_grid(0.9, 0.01)
SPLIT = cost_split(200, 50)  # where the search cuts a bracket for 200 images and a floor of 188: a "below" takes
# at least 50 images (MIN_BATCH) and "within" about all 200


@pytest.fixture
def synthetic(monkeypatch):
    """Sweeps whose points are a synthetic curve: ``curve["correct"][s]`` correct images of ``curve["n"]``
    at sparsity s (0: dense), at seeded random positions; ``curve["images"]`` counts images evaluated.
    With ``curve["ranked"]`` the images have a fixed difficulty rank instead (seeded): at every sparsity
    the wrong ones are the lowest ranks, and the dense model's margins follow the rank, as the images a
    pruned model gets wrong are mostly those the dense model found hard."""
    curve = {"n": 200, "correct": {}, "images": 0, "ranked": False}
    rank = list(range(curve["n"]))
    random.Random(7).shuffle(rank)

    def hits(s: float) -> list[bool]:
        c = curve["correct"][round(s, 6)]
        if curve["ranked"]:
            return [r >= curve["n"] - c for r in rank]
        order = list(range(curve["n"]))
        random.Random(round(s * 100)).shuffle(order)
        return [i < c for i in order]

    def evaluate(self, model=None, limit=None, seed=0, bf16=True, margins=False):
        h = hits(0.0 if model is None else model)
        curve["images"] += len(h)
        c = sum(h)
        margin = torch.tensor([r - (len(h) - c) + 0.5 for r in rank] if curve["ranked"] else
                              [1.0 if hit else -1.0 for hit in h])  # the dense model's wrong images first
        return EvalResult(c / len(h), len(h), c, wilson_interval(c, len(h)), {}, torch.empty(0), torch.empty(0),
                          margin if margins else None)

    def decide(model, data, data_config, required, limit, seed, bf16, order=None, budget=None, start=None):
        h = hits(model)
        h = h if order is None else [h[i] for i in order]

        def count(a: int, b: int) -> int:
            curve["images"] += b - a
            return sum(h[a:b])
        return decide_in_batches(count, len(h), required, budget=budget, start=start)

    monkeypatch.setattr(sweep_mod.PointEvaluator, "mask", lambda self, method, s: types_mask(s))
    monkeypatch.setattr(sweep_mod.PointEvaluator, "pruned_model", lambda self, mask: mask.sparsity)
    monkeypatch.setattr(Context, "evaluate", evaluate)
    monkeypatch.setattr(sweep_points, "decide", decide)
    return curve


def types_mask(s: float):
    return type("StubMask", (), {"sparsity": s})()


def fresh(ctx: Context, tmp_path) -> Context:
    return dataclasses.replace(ctx, store=Store(tmp_path / f"{uuid.uuid4().hex}.db"))


BISECT = SweepConfig(methods=("omp",), limit=200, search="bisect")


def _curves() -> dict[str, dict[float, int]]:
    """Synthetic curves of correct images (of 200) at each fine sparsity; dense 190, so 188 is the floor."""
    gradual = {s: 190 - max(0, round(100 * s) - 30) for s in FINE}  # one image fewer per step from 0.31: 188 at 0.32
    return {"sharp drop at 0.6": {s: 190 if s < 0.6 else 60 for s in FINE},
            "gradual, on the floor": gradual,
            "never below": {s: 189 for s in FINE},
            "below from the start": {s: 100 for s in FINE}}


@pytest.mark.parametrize("name", list(_curves()))
def test_bisection_with_early_decisions_gives_the_full_fine_grid_answer(synthetic, tiny_ctx, tmp_path, name):
    counts = _curves()[name]
    synthetic["correct"] = {0.0: 190, **counts}
    full = essential_sparsity([(s, c / 200) for s, c in counts.items()], 190 / 200, 0.01)
    ctx = fresh(tiny_ctx, tmp_path)
    early = run_sweep(ctx, BISECT)
    early_images = synthetic["images"] - 200  # less the dense evaluation
    plain = run_sweep(fresh(tiny_ctx, tmp_path), dataclasses.replace(BISECT, early=False))
    for res in (early, plain):
        ess = res.essential["omp"]
        assert ess["bracket"] == list(full.bracket) and ess["essential_sparsity"] == full.essential_sparsity
        assert ess["monotone"] == full.monotone and not ess["recovers"]
        assert ess["evaluations"] <= bisect_decisions(len(FINE), SPLIT) + 8  # the search, and the coarse check past it
    e = early.essential["omp"]
    assert e["images"] == early_images <= plain.essential["omp"]["images"] == 200 * e["evaluations"]
    rows = early.frame
    assert e["decided_early"] == int(rows["early"].sum()) == int((rows["seen"] < 200).sum())
    assert rows.loc[rows["early"], "accuracy"].isna().all()  # no partial accuracy is stored as if complete
    for r in ctx.store.points(early.run_id).values():  # the bounds hold the full evaluation's accuracy
        assert r["acc_low"] <= counts[r["sparsity"]] / 200 <= r["acc_high"] and (r["accuracy"] is None) == r["early"]


SCOUT = dataclasses.replace(BISECT, search="scout")


@pytest.mark.parametrize("ranked", [False, True], ids=["random errors", "errors on hard images"])
@pytest.mark.parametrize("name", list(_curves()))
def test_the_scouted_search_gives_the_bisection_answer(synthetic, tiny_ctx, tmp_path, name, ranked):
    counts = _curves()[name]
    synthetic.update(correct={0.0: 190, **counts}, ranked=ranked)
    full = essential_sparsity([(s, c / 200) for s, c in counts.items()], 190 / 200, 0.01)
    ctx = fresh(tiny_ctx, tmp_path)
    scout = run_sweep(ctx, SCOUT)
    scout_images = synthetic["images"] - 200
    synthetic["images"] = 0
    bisect = run_sweep(fresh(tiny_ctx, tmp_path), BISECT)
    bisect_images = synthetic["images"] - 200
    s, b = scout.essential["omp"], bisect.essential["omp"]
    assert s["bracket"] == b["bracket"] == list(full.bracket) and s["essential_sparsity"] == full.essential_sparsity
    assert s["images"] == scout_images and not s["recovers"]
    points = ctx.store.points(scout.run_id).values()
    opened = [p for p in points if p.get("open")]  # scouts never decided exactly: stored, but in no curve or table
    assert s["scouts_open"] == len(opened) and len(scout.frame) == len(points) - len(opened)
    assert all(p["acc_low"] < 188 / 200 <= p["acc_high"] and p["accuracy"] is None for p in opened)
    assert set(scout.frame["sparsity"]) >= {x for x in full.bracket if x}  # the bracket is decided, not scouted
    if ranked and name in ("sharp drop at 0.6", "gradual, on the floor"):
        assert scout_images < bisect_images


def test_an_interrupted_scouted_search_resumes_without_evaluating_an_image_twice(synthetic, tiny_ctx, tmp_path):
    synthetic.update(correct={0.0: 190, **_curves()["gradual, on the floor"]}, ranked=True)
    whole = run_sweep(fresh(tiny_ctx, tmp_path), SCOUT).essential["omp"]
    ctx = fresh(tiny_ctx, tmp_path)
    synthetic["images"] = 0

    def interrupt(fields):
        if fields["done"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(ctx, SCOUT, on_progress=interrupt)
    resumed = run_sweep(ctx, SCOUT).essential["omp"]
    assert resumed == whole and synthetic["images"] - 200 == whole["images"]


def test_the_coarse_check_reports_accuracy_coming_back(synthetic, tiny_ctx, tmp_path):
    # within tolerance up to 0.59, below from 0.6, but back within at 0.8 (not monotone)
    synthetic["correct"] = {0.0: 190, **{s: 190 if s < 0.6 or s == 0.8 else 100 for s in FINE}}
    ctx = fresh(tiny_ctx, tmp_path)
    res = run_sweep(ctx, BISECT)
    ess = res.essential["omp"]
    assert ess["bracket"] == [0.59, 0.6] and ess["recovers"] and not ess["monotone"]
    probes = []  # the search's own points: the bisection cut at SPLIT, on the curve's within/below answers
    bisect_turning_point(FINE, lambda s: probes.append(s) or synthetic["correct"][s] >= 188, SPLIT)
    checked = res.frame.loc[~res.frame["refined"], "sparsity"].tolist()
    assert checked == [s for s in (0.7, 0.8, 0.9) if s not in probes] == [0.7, 0.8]  # the 0.1 grid past 0.6
    assert res.frame.loc[res.frame["refined"], "sparsity"].tolist() == sorted(probes)
    assert ess["evaluations"] == len(probes) + 2 == 9
    # points decided early (0.9 after 13 wrong of 200, ...) are in no chart: the figure and the Experiments curve skip them
    early = res.frame.loc[res.frame["early"], "sparsity"].tolist()
    complete = res.frame.loc[~res.frame["early"], "sparsity"].tolist()
    assert 0.9 in early and 0.59 in complete and ess["decided_early"] == len(early)
    from lotus_core.results.registry import experiments
    from lotus_core.views.figures import sparsity_curve

    trace = next(t for t in sparsity_curve(res.frame, res.dense, res.essential).data if t.name == "omp")
    assert [round(x, 6) for x in trace.x] == [0.0] + [round(100 * s, 6) for s in complete]
    rows = experiments()["sweep"].curve(ctx.store.points(res.run_id), None)
    assert sorted(r["x"] for r in rows) == complete


def test_bisect_sweep_on_a_model_matches_full_evaluation_and_is_stored(trained_tiny_ctx):
    ctx = trained_tiny_ctx
    base = dict(methods=("omp", "nm"), limit=200, eps=0.05, search="bisect")
    early = run_sweep(ctx, SweepConfig(**base))
    n_decisions = len(ctx.store.runs(kind="prune-decide"))
    full = run_sweep(ctx, SweepConfig(**base, early=False))
    for method in ("omp", "nm"):
        e, f = early.essential[method], full.essential[method]
        assert e["bracket"] == f["bracket"] and e["essential_sparsity"] == f["essential_sparsity"]
    assert early.frame["sparsity"].tolist() == full.frame["sparsity"].tolist()
    floor = early.dense["accuracy"] - 0.05
    assert ((early.frame["acc_low"] >= floor - 1e-12) == (full.frame["accuracy"] >= floor - 1e-12)).all()
    assert early.essential["omp"]["images"] < full.essential["omp"]["images"]
    assert n_decisions == len(early.frame) and early.frame["early"].any()
    # decisions that needed every image were stored as full evaluations: the full sweep reused them
    complete = int((~early.frame["early"]).sum())
    assert len(ctx.store.runs(kind="prune-eval")) == len(full.frame) and complete > 0


def test_bisect_on_the_default_model_gives_the_full_evaluation_answer(tmp_path):
    """The default model, 500 test images: early decisions, full evaluations of the same points, the
    0.1 grid refined by full evaluations (the old search) and the scouted search find the same turning
    point and bracket."""
    from lotus_core.context import open_context

    ctx = open_context(db=tmp_path / "r.db")
    early = run_sweep(ctx, SweepConfig(methods=("omp",), limit=500, search="bisect"))
    full = run_sweep(ctx, SweepConfig(methods=("omp",), limit=500, search="bisect", early=False))
    grid = run_sweep(ctx, SweepConfig(methods=("omp",), limit=500, refine=True))
    scout = run_sweep(ctx, SweepConfig(methods=("omp",), limit=500, search="scout"))
    e, f, g, s = (r.essential["omp"] for r in (early, full, grid, scout))
    assert e["bracket"] == f["bracket"] == g["bracket"] == s["bracket"]
    assert e["essential_sparsity"] == g["essential_sparsity"] == s["essential_sparsity"]
    assert e["bracket"][1] - e["bracket"][0] == pytest.approx(0.01) and not e["recovers"]
    floor = early.dense["accuracy"] - 0.01
    assert ((early.frame["acc_low"] >= floor - 1e-12) == (full.frame["accuracy"] >= floor - 1e-12)).all()
    at90 = early.frame.set_index("sparsity").loc[0.9]
    assert at90["early"] and at90["seen"] < 200  # far below the floor: decided from a fraction of the images
    assert e["images"] < f["images"] == 500 * f["evaluations"]


def test_a_new_eps_goes_on_from_each_points_earlier_decision_never_restarting_it(synthetic, tiny_ctx, tmp_path):
    """Measured once: a decision's counts (correct of the first seen images, hard-first) do not depend on the
    tolerance, so a new eps answers from them and evaluates only images no earlier decision of the point saw."""
    synthetic.update(correct={0.0: 190, **_curves()["gradual, on the floor"]}, ranked=True)
    ctx = fresh(tiny_ctx, tmp_path)
    run_sweep(ctx, SCOUT)  # eps 1 point
    wider = dataclasses.replace(SCOUT, eps=0.02)
    reused = run_sweep(ctx, wider)
    images = synthetic["images"] - 200  # less the dense evaluation (once: stored)
    assert images == _prefix_images(ctx)  # no image of any point was evaluated twice
    synthetic["images"] = 0
    alone = run_sweep(fresh(tiny_ctx, tmp_path), wider)  # the same question on an empty store
    r, a = reused.essential["omp"], alone.essential["omp"]
    assert r["bracket"] == a["bracket"] and r["essential_sparsity"] == a["essential_sparsity"]
    full = essential_sparsity([(s, c / 200) for s, c in _curves()["gradual, on the floor"].items()], 190 / 200, 0.02)
    assert r["bracket"] == list(full.bracket)
    synthetic["images"] = 0
    again = run_sweep(ctx, dataclasses.replace(SCOUT, eps=0.015))  # every point it needs is decided by now or cheaper
    assert again.essential["omp"]["essential_sparsity"] == essential_sparsity(
        [(s, c / 200) for s, c in _curves()["gradual, on the floor"].items()], 190 / 200, 0.015).essential_sparsity
    assert synthetic["images"] + images == _prefix_images(ctx)


def _prefix_images(ctx: Context) -> int:
    """The images every point's furthest decision saw, summed over the points."""
    return sum(ctx.store.get_run(i)["summary"]["seen"] for i in ctx.store.runs(kind="prune-prefix")["id"])


def test_the_full_evaluation_of_a_point_decided_early_goes_on_from_its_decision(trained_tiny_ctx, tmp_path,
                                                                                  monkeypatch):
    ctx = trained_tiny_ctx
    early = run_sweep(ctx, SweepConfig(methods=("omp",), limit=200, eps=0.05, search="bisect"))
    decided = early.frame[early.frame["early"]]
    assert len(decided) > 0
    seen = dict(zip(decided["sparsity"], decided["seen"]))
    images = []
    real = sweep_points.predict
    monkeypatch.setattr(sweep_points, "predict", lambda model, x, *a, **k: images.append(len(x)) or real(model, x, *a, **k))
    grid = SweepConfig(methods=("omp",), limit=200, sparsities=tuple(sorted(seen)))
    continued = run_sweep(ctx, grid)
    assert sum(images) == sum(200 - s for s in seen.values())  # only the images after each decision's seen
    monkeypatch.setattr(sweep_points, "predict", real)
    restarted = run_sweep(fresh(ctx, tmp_path), grid)  # every point evaluated from its first image
    cols = ["sparsity", "accuracy", "ci_low", "ci_high", "n"]
    pd.testing.assert_frame_equal(continued.frame[cols], restarted.frame[cols])


def test_a_curve_being_computed_is_its_stored_points_and_the_searchs_with_the_grid_size(trained_tiny_ctx):
    import io

    from lotus_core.pruning.sweep import curve_so_far, turning_point_search

    ctx = trained_tiny_ctx
    config = SweepConfig(methods=("omp",), limit=200, eps=0.05, refine=True)
    answer = run_sweep(ctx, turning_point_search(config))

    def stop(fields):
        if fields["done"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(ctx, config, on_progress=stop)
    frame, planned = curve_so_far(ctx, config, answer)
    assert planned == 9  # 0.1 .. 0.9
    stored = {(p["method"], p["sparsity"]) for p in ctx.store.points(run_id_for(ctx, "sweep", config)).values()}
    searched = set(zip(answer.frame["method"], answer.frame["sparsity"]))
    assert set(zip(frame["method"], frame["sparsity"])) == stored | searched and not frame.duplicated(
        ["method", "sparsity"]).any()
    both = stored & searched  # a point both have is drawn with its full evaluation, never as a bound
    assert all(frame.set_index(["method", "sparsity"]).loc[list(both), "accuracy"].notna())
    run_sweep(ctx, config)
    table = pd.read_csv(io.StringIO(ctx.store.export_csv(run_id_for(ctx, "sweep", config))))
    table = table[table["method"].notna()]
    assert (table["correct"] == (table["accuracy"] * table["n"]).round()).all()  # the CSV's correct column is filled


@pytest.mark.parametrize("argv, message", [
    (["--methods", "bogus"], "unknown method 'bogus'; choose from"),
    (["--methods", ","], "no methods given"),
    (["--sparsities", "0:1:0.5"], "outside"),
    (["--protocol", "paper"], "invalid choice: 'paper'"),
])
def test_a_refused_sweep_says_so_before_loading_the_model(monkeypatch, capsys, argv, message):
    import lotus_core.context as context_mod

    def never(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(context_mod, "open_context", never)
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_sweep_help_states_the_protocols_and_eps_unit_in_full(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "1000")  # one help line per flag: nothing wrapped
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert "lotus: prune the model as it is; essential: pre-trained masks, each fine-tuned (PROTOCOLS)" in text
    assert "tolerance below dense accuracy, a fraction (0.01 = 1 accuracy point)" in text


def test_a_sweeps_rows_are_its_frame_with_none_where_the_frame_has_nan(tmp_path):
    """The CLI prints ``rows`` (no pandas import); notebooks and pages read ``frame``: the same table."""
    from lotus_core.cli import _jsonable
    from lotus_core.context import open_context
    from lotus_core.pruning.sweep import FRAME_COLUMNS, run_sweep

    ctx = open_context(db=tmp_path / "r.db")
    result = run_sweep(ctx, SweepConfig(methods=("omp", "random"), search="bisect", limit=100))
    early = [r for r in result.rows if r["early"]]
    assert early and all(r["accuracy"] is None for r in early) and len(result.rows) > len(early)
    assert [(r["method"], r["sparsity"]) for r in result.rows] == sorted((r["method"], r["sparsity"])
                                                                         for r in result.rows)
    assert list(result.frame.columns) == FRAME_COLUMNS and result.frame["accuracy"].dtype == float
    assert _jsonable(result.rows) == _jsonable(result.frame.to_dict(orient="records"))
