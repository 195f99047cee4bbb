"""The pruning commands, run in-process on the default model with small test subsets."""
import json

import pytest
import torch

from lotus_core.context import open_context
from lotus_core.pruning import Mask, prune
from lotus_core.pruning.sweep import PointEvaluator, SweepConfig
from tests.commands.test_core import run_cli


@pytest.mark.parametrize("args, message", [
    (["prune", "--method", "magic"], "argument --method: invalid choice: 'magic'"),
    (["prune", "--method", "omp", "--sparsity", "1.0"], "1.0 is outside [0, 1)"),
    (["prune", "--method", "omp", "--sparsity", "50"], "50 is outside [0, 1); give a fraction such as 0.5 (not a percentage)"),
    (["prune", "--method", "nm", "--n", "2", "--m", "5"], "blocks.0.attn.qkv.weight has 96 inputs, not a multiple of M=5"),
    (["prune", "--method", "nm", "--n", "4", "--m", "4"], "N:M = 4:4 is not a valid pattern"),
    (["sweep", "--methods", "omp,magic"], "unknown method 'magic'; choose from omp, omp-layerwise, random, nm, wanda"),
    (["sweep", "--sparsities", "0:0.9"], "cannot read sparsities '0:0.9'"),
    (["sweep", "--sparsities", "0.5,1.2"], "sparsity 1.2 is outside [0, 1)"),
    (["essential", "--curve", "/nonexistent/curve.csv"], "curve file /nonexistent/curve.csv does not exist"),
])
def test_bad_pruning_arguments_exit_2_with_one_line(capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, *args, "--db", str(tmp_path / "r.db"))
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err, err


def test_prune_reports_what_the_core_computes_and_writes_the_mask(capsys, tmp_path):
    db, out_file = tmp_path / "r.db", tmp_path / "omp.safetensors"
    code, out, err = run_cli(capsys, "prune", "--method", "omp", "--sparsity", "0.37", "--limit", "200",
                             "--mask-out", str(out_file), "--json", "--db", str(db))
    assert code == 0, err
    res = json.loads(out)
    ctx = open_context(db=db)
    expect = prune(ctx.model, "omp", 0.37)
    assert res["sparsity"] == expect.sparsity == round(0.37 * expect.numel()) / expect.numel()
    assert res["sparsity_requested"] == 0.37 and res["n"] == 200
    point = PointEvaluator(ctx, SweepConfig(limit=200)).evaluate("omp", 0.37)
    assert res["accuracy"] == point["accuracy"] and res["ci95"] == [point["ci_low"], point["ci_high"]]
    assert res["dense_accuracy"] == ctx.dense_accuracy(limit=200)["accuracy"]
    assert res["per_layer"] == expect.layer_sparsity() and len(res["per_layer"]) == 24
    saved = Mask.load(out_file)
    assert all(torch.equal(saved[n], expect[n]) for n in expect)
    code, out, _ = run_cli(capsys, "prune", "--method", "nm", "--n", "4", "--m", "8", "--limit", "200", "--json",
                           "--db", str(db))
    res = json.loads(out)
    assert code == 0 and res["sparsity"] == res["sparsity_requested"] == 0.5


def test_sweep_no_cache_recomputes_and_a_repeat_is_served(capsys, tmp_path, monkeypatch):
    import lotus_core.pruning.sweep as sweep_mod

    calls = []
    real = sweep_mod.PointEvaluator.pruned_model
    monkeypatch.setattr(sweep_mod.PointEvaluator, "pruned_model", lambda self, mask: calls.append(1) or real(self, mask))
    args = ["sweep", "--methods", "omp,random", "--sparsities", "0.4,0.8", "--limit", "100", "--json",
            "--db", str(tmp_path / "r.db")]
    code, first, _ = run_cli(capsys, *args)
    assert code == 0 and len(calls) == 4
    code, again, _ = run_cli(capsys, *args)
    assert code == 0 and len(calls) == 4 and json.loads(again) == json.loads(first)
    code, fresh, _ = run_cli(capsys, *args, "--no-cache")
    assert code == 0 and len(calls) == 8
    assert json.loads(fresh)["points"] == json.loads(first)["points"]  # deterministic: the same numbers again


def test_sensitivity_prunes_each_of_the_24_layers(capsys, tmp_path):
    code, out, err = run_cli(capsys, "sensitivity", "--sparsities", "0.9", "--limit", "100", "--json",
                             "--db", str(tmp_path / "r.db"))
    assert code == 0, err
    drop = json.loads(out)["drop"]
    assert len(drop) == 24 and list(drop)[0] == "blocks.0.attn.qkv.weight"
    assert all(set(v) == {"0.9"} for v in drop.values())
