"""The sanity checks of any method's mask (shuffled within layers, re-initialised weights) in sweeps and the CLI."""
import json

import pytest
import torch

from lotus_core.core.errors import LotusError
from lotus_core.pruning import Mask, scoped_parameters
from lotus_core.pruning.controls import REINIT_STD, reinit_, shuffled
from lotus_core.pruning.sweep import PointEvaluator, SweepConfig, curves, run_sweep, split_curve
from tests.commands.test_core import run_cli


def test_shuffle_keeps_every_layer_count_and_moves_the_kept_positions(tiny_vit):
    from lotus_core.pruning import prune

    mask = prune(tiny_vit, "omp", 0.7)
    shuf = shuffled(mask, seed=3)
    assert {n: int(t.sum()) for n, t in shuf.items()} == {n: int(t.sum()) for n, t in mask.items()}
    assert all(not torch.equal(shuf[n], mask[n]) for n in mask)
    assert all(torch.equal(shuf[n], shuffled(mask, seed=3)[n]) for n in mask)


def test_reinit_redraws_from_the_vit_init_seeded(tiny_vit):
    a = {n: p.detach().clone() for n, p in scoped_parameters(tiny_vit).items()}
    b = {n: t.clone() for n, t in a.items()}
    reinit_(a, seed=1)
    reinit_(b, seed=1)
    flat = torch.cat([t.reshape(-1) for t in a.values()])
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert all(not torch.equal(a[n], p.detach()) for n, p in scoped_parameters(tiny_vit).items())
    assert abs(float(flat.std()) - REINIT_STD) < 0.001 and abs(float(flat.mean())) < 0.001


def test_sweep_draws_each_method_beside_its_controls_with_their_own_keys(tiny_ctx):
    config = SweepConfig(methods=("omp", "snip"), sparsities=(0.5, 0.8), limit=50,
                         method_options={"snip": {"calib_size": 16}}, controls=("shuffle", "reinit"))
    assert curves(config) == ["omp", "omp+shuffle", "omp+reinit", "snip", "snip+shuffle", "snip+reinit"]
    result = run_sweep(tiny_ctx, config)
    assert sorted(set(result.frame["method"])) == sorted(curves(config)) and len(result.frame) == 12
    assert set(result.essential) == set(curves(config))
    ev = PointEvaluator(tiny_ctx, config)
    keys = {c: ev.point_config(c, 0.5) for c in curves(config)}
    assert keys["omp+shuffle"]["control"] == "shuffle" and "control" not in keys["omp"]
    assert keys["snip"]["calib_size"] == 16 and len({json.dumps(k, sort_keys=True) for k in keys.values()}) == 6
    # the shuffled point is the method's mask shuffled, evaluated on the base weights
    mask = shuffled(ev.mask("snip", 0.8), config.seed)
    expect = tiny_ctx.evaluate(mask.apply(tiny_ctx.model), limit=50, seed=0)
    row = result.frame[(result.frame["method"] == "snip+shuffle") & (result.frame["sparsity"] == 0.8)].iloc[0]
    assert row["accuracy"] == expect.accuracy and row["sparsity_reached"] == mask.sparsity
    # the reinit point is the method's own mask on the re-initialised weights
    reinit = Mask(ev.mask("omp", 0.5), weights=ev.reinit_weights())
    expect = tiny_ctx.evaluate(reinit.apply(tiny_ctx.model), limit=50, seed=0)
    row = result.frame[(result.frame["method"] == "omp+reinit") & (result.frame["sparsity"] == 0.5)].iloc[0]
    assert row["accuracy"] == expect.accuracy


def test_split_curve_and_an_unknown_control():
    assert split_curve("sparsegpt-nm+shuffle") == ("sparsegpt-nm", "shuffle") and split_curve("omp") == ("omp", None)
    with pytest.raises(LotusError, match="unknown control 'flip'"):
        curves(SweepConfig(controls=("flip",)))


def test_cli_prune_with_controls_and_new_methods(capsys, tmp_path):
    db = str(tmp_path / "r.db")
    code, out, err = run_cli(capsys, "prune", "--method", "sparsegpt", "--sparsity", "0.5", "--limit", "100",
                             "--controls", "shuffle", "--json", "--db", db)
    assert code == 0, err
    res = json.loads(out)
    assert res["sparsity"] == 0.5 and set(res["controls"]) == {"shuffle"}
    assert all(v == 0.5 for v in res["per_layer"].values())  # SparseGPT: the same sparsity in every layer
    code, out, err = run_cli(capsys, "sweep", "--methods", "synflow", "--rounds", "3", "--sparsities", "0.5",
                             "--controls", "reinit", "--limit", "100", "--json", "--db", db)
    assert code == 0, err
    assert sorted(p["method"] for p in json.loads(out)["points"]) == ["synflow", "synflow+reinit"]
    code, out, err = run_cli(capsys, "sweep", "--controls", "flip", "--db", db)
    assert code == 2 and "unknown control 'flip'" in err and err.count("\n") == 1
