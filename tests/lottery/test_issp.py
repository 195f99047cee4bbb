"""Instant Sparse Soup Pruning on the tiny seeded ViT: merge rules, re-projection, the soup, rounds, resume."""
import dataclasses
import json

import pytest
import torch

from lotus_core.core.errors import LotusError
from lotus_core.lottery.common import prune_counts, prune_remaining, round_masks
from lotus_core.lottery.issp import (ISSPConfig, data_fraction_sweep, denoiser_state, issp_counts, issp_round,
                                     lookahead, merge_masks, reproject, run_issp)
from lotus_core.pruning import Mask, prune
from lotus_core.pruning.scope import scoped_parameters
from lotus_core.results.executors import get_executor
from lotus_core.results.runs import Run, run_experiment, run_id_for
from lotus_core.results.store import Store
from tests.commands.test_core import run_cli
from tests.lottery.test_lth import assert_same_run

CFG = ISSPConfig(target=0.5, per_round=0.3, denoisers=2, lookahead_steps=4, finetune_steps=4, lr=3e-3,
                 batch_size=32, limit=50)


def m(**layers):
    return Mask({k: torch.tensor(v, dtype=torch.bool) for k, v in layers.items()})


def test_merge_rules():
    masks = [m(w=[1, 1, 0, 0, 1]), m(w=[1, 0, 1, 0, 1]), m(w=[1, 0, 0, 1, 0])]
    assert merge_masks(masks, "union")["w"].tolist() == [True, True, True, True, True]
    assert merge_masks(masks, "intersection")["w"].tolist() == [True, False, False, False, False]
    assert merge_masks(masks, "majority")["w"].tolist() == [True, False, False, False, True]
    assert merge_masks(masks[:2], "majority")["w"].tolist() == [True, False, False, False, True]  # 1 of 2 is no majority
    with pytest.raises(LotusError, match="unknown merge rule 'average'; choose one of union, intersection, majority"):
        merge_masks(masks, "average")


def _flat(mask, names):
    return torch.cat([mask[n].reshape(-1) for n in names])


def test_reprojection_prunes_the_weakest_of_a_union_and_regrows_the_strongest_of_an_intersection(tiny_vit):
    params = scoped_parameters(tiny_vit)
    names = list(params)
    w = torch.cat([p.detach().abs().reshape(-1) for p in params.values()])
    previous = prune(tiny_vit, "random", 0.2, seed=3)
    k = round(0.5 * previous.numel())
    union = Mask({n: previous[n] & prune(tiny_vit, "random", 0.3, seed=4)[n] for n in names})
    assert union.num_pruned() < k
    out = reproject(union, tiny_vit, previous, k)
    kept_before, kept_after = _flat(union, names), _flat(out, names)
    assert out.num_pruned() == k and torch.all(kept_after <= kept_before)
    dropped = kept_before & ~kept_after
    assert w[dropped].max() <= w[kept_after].min()  # the smallest surviving weights went
    inter = Mask({n: previous[n] & prune(tiny_vit, "random", 0.7, seed=5)[n] for n in names})
    assert inter.num_pruned() > k
    out = reproject(inter, tiny_vit, previous, k)
    kept_before, kept_after, allowed = _flat(inter, names), _flat(out, names), _flat(previous, names)
    assert out.num_pruned() == k and torch.all(kept_before <= kept_after) and torch.all(kept_after <= allowed)
    grown, passed_over = kept_after & ~kept_before, allowed & ~kept_after
    assert w[grown].min() >= w[passed_over].max()  # the largest lost weights came back


def test_a_round_soups_the_lookaheads_and_the_denoisers_change_the_mask(tiny_ctx):
    run = Run(tiny_ctx.store, tiny_ctx.store.start_run("issp", {"t": 1}), "issp")
    theta = tiny_ctx.copy_model()
    ones = Mask.ones(scoped_parameters(theta))
    k = issp_counts(tiny_ctx, CFG)[0]
    pool = get_executor(tiny_ctx.executor).pool(denoiser_state, tiny_ctx, CFG)
    soup, mask, stats = issp_round(tiny_ctx, CFG, run, pool, theta, ones, 1, k, 2)
    assert mask.num_pruned() == k
    heads = [lookahead(tiny_ctx, CFG, theta.state_dict(), ones, 1, i) for i in range(2)]
    weak = [prune_remaining(h, ones, k) for h in heads]
    assert not all(torch.equal(weak[0][n], weak[1][n]) for n in mask)  # different data, different masks
    union = merge_masks(weak, "union")
    assert stats["merged_sparsity"] == union.sparsity < k / mask.numel()  # a union of masks is denser
    expected = {name: (heads[0].state_dict()[name].double() + heads[1].state_dict()[name].double()) / 2
                for name in heads[0].state_dict()}
    for name, value in soup.state_dict().items():
        want = expected[name].float() * mask[name] if name in mask else expected[name].float()
        assert torch.equal(value, want), name
    start = prune_remaining(theta, ones, k)
    changed = sum(int((start[n] != mask[n]).sum()) for n in mask) / mask.numel()
    assert stats["changed_vs_magnitude"] == changed > 0


def test_issp_rounds_are_stored_with_exact_sizes_and_costs(tiny_ctx):
    summary = run_experiment(tiny_ctx, "issp", CFG, run_issp)
    masks = round_masks(tiny_ctx.store, summary["run_id"])
    total = masks[1].numel()
    assert [m.num_pruned() for m in masks.values()] == prune_counts(total, 0.5, 0.3) == [1229, 2048]
    assert all(torch.all(masks[2][n] <= masks[1][n]) for n in masks[1])
    points = tiny_ctx.store.points(summary["run_id"])
    assert list(points) == ["round-1", "round-2", "final"]
    assert [points[k]["steps"] for k in points] == [2 * 4, 2 * 4, 4]
    assert summary["train_steps"] == 2 * 2 * 4 + 4 and summary["final_sparsity"] == 2048 / total
    assert summary["train_time_s"] == pytest.approx(sum(p["elapsed_s"] for p in points.values()))
    assert summary["before_finetune_accuracy"] == points["round-2"]["accuracy"]
    for key in ("merged_sparsity", "changed_vs_magnitude"):
        assert all(0 <= points[f"round-{r}"][key] <= 1 for r in (1, 2))


def test_resumed_issp_equals_uninterrupted(tiny_ctx, tmp_path):
    full = run_experiment(tiny_ctx, "issp", CFG, run_issp)
    other = dataclasses.replace(tiny_ctx, store=Store(tmp_path / "other.db"))  # same model, separate store

    def stop(fields):
        if fields.get("round") == 2 and fields.get("denoiser") == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(other, "issp", CFG, run_issp, on_progress=stop)
    assert list(other.store.points(run_id_for(other, "issp", CFG))) == ["round-1"]
    resumed = run_experiment(other, "issp", CFG, run_issp)
    assert_same_run(tiny_ctx.store, full["run_id"], other.store, resumed["run_id"])


def test_data_fraction_sweep_runs_each_fraction_once(tiny_ctx):
    cfg = dataclasses.replace(CFG, target=0.3, denoisers=1, lookahead_steps=2, finetune_steps=1)
    table = data_fraction_sweep(tiny_ctx, cfg, (0.1, 1.0))
    assert table["data_fraction"].tolist() == [0.1, 1.0] and table["run_id"].nunique() == 2
    assert table["run_id"].tolist() == [run_id_for(tiny_ctx, "issp", dataclasses.replace(cfg, data_fraction=f))
                                        for f in (0.1, 1.0)]
    again = data_fraction_sweep(tiny_ctx, cfg, (0.1, 1.0))  # read back from the store
    assert again.equals(table)


@pytest.mark.parametrize("change, message", [
    ({"data_fraction": 0.0}, "data fraction 0.0 is outside (0, 1]"),
    ({"merge": "mean"}, "unknown merge rule 'mean'"),
    ({"denoisers": 0}, "at least one denoiser"),
    ({"per_round": 1.0}, "pruning fraction per round 1.0 is outside (0, 1)"),
])
def test_bad_configs_are_refused(tiny_ctx, change, message):
    with pytest.raises(LotusError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        issp_counts(tiny_ctx, dataclasses.replace(CFG, **change))


def test_cli_soup_reports_rounds_and_cost_and_writes_the_mask(capsys, tmp_path):
    db, out_file = tmp_path / "r.db", tmp_path / "soup.safetensors"
    args = ["--target", "0.3", "--per-round", "0.2", "--denoisers", "2", "--lookahead-steps", "2",
            "--finetune-steps", "2", "--batch-size", "16", "--limit", "50", "--db", str(db)]
    code, out, err = run_cli(capsys, "soup", *args, "--mask-out", str(out_file), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert [p["round"] for p in res["points"]] == [1, 2] and res["train_steps"] == 2 * 2 * 2 + 2
    assert Mask.load(out_file).num_pruned() == res["points"][-1]["num_pruned"] == res["final"]["num_pruned"]
    assert res["final"]["sparsity"] == pytest.approx(0.3, abs=1e-5)
    code, out, err = run_cli(capsys, "soup", *args, "--data-fraction", "0")
    assert code == 2 and err.count("\n") == 1 and "argument --data-fraction: 0 is outside (0, 1]" in err


def test_cli_soup_sweep_refuses_unreadable_fractions(capsys, tmp_path):
    code, out, err = run_cli(capsys, "soup-sweep", "--data-fractions", "0.1,ten", "--db", str(tmp_path / "r.db"))
    assert (code, out) == (2, "") and err.count("\n") == 1 and "cannot read data fractions '0.1,ten'" in err
