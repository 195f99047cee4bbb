import dataclasses

import pytest
import torch

from lotus_core.errors import LotusError
from lotus_core.lottery.issp import ISSPConfig, merge_masks, reproject, run_issp
from lotus_core.lottery.lth import round_masks
from lotus_core.pruning import Mask, prune
from lotus_core.store import Store
from lotus_core.runs import run_experiment, run_id_for

CFG = ISSPConfig(target=0.5, per_round=0.3, denoisers=2, lookahead_steps=4, finetune_steps=4, lr=3e-3,
                 batch_size=32, limit=50)


def test_merge_rules():
    a = Mask({"w": torch.tensor([1, 1, 0, 0], dtype=torch.bool)})
    b = Mask({"w": torch.tensor([1, 0, 1, 0], dtype=torch.bool)})
    c = Mask({"w": torch.tensor([1, 0, 0, 1], dtype=torch.bool)})
    assert merge_masks([a, b, c], "union")["w"].tolist() == [True, True, True, True]
    assert merge_masks([a, b, c], "intersection")["w"].tolist() == [True, False, False, False]
    assert merge_masks([a, b, c], "majority")["w"].tolist() == [True, False, False, False]
    with pytest.raises(LotusError, match="unknown merge rule"):
        merge_masks([a], "average")


def test_reprojection_lands_exactly_on_the_sparsity_and_prefers_the_merged_set(tiny_vit):
    merged = prune(tiny_vit, "random", 0.3, seed=0)  # denser than the target
    out = reproject(merged, tiny_vit, 0.5, "blocks")
    assert out.num_pruned() == round(0.5 * out.numel())
    assert all(torch.all(out[n] <= merged[n]) for n in out)  # nothing outside the union comes back


def test_issp_rounds_are_stored_and_costs_recorded(tiny_ctx):
    summary = run_experiment(tiny_ctx, "issp", CFG, run_issp)
    masks = round_masks(tiny_ctx, summary["run_id"])
    assert list(masks) == [1, 2]
    assert masks[2].num_pruned() == round(0.5 * masks[2].numel())
    assert summary["train_steps"] == 2 * 2 * 4 + 4
    assert summary["final_sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_resumed_issp_equals_uninterrupted(tiny_ctx, tmp_path):
    full = run_experiment(tiny_ctx, "issp", CFG, run_issp)
    other = dataclasses.replace(tiny_ctx, store=Store(tmp_path / "other.db"))  # same model, separate store

    def stop(fields):
        if fields.get("round") == 2 and "denoiser" in fields:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(other, "issp", CFG, run_issp, on_progress=stop)
    assert list(other.store.points(run_id_for(other, "issp", CFG))) == ["round-1"]
    resumed = run_experiment(other, "issp", CFG, run_issp)
    a, b = round_masks(tiny_ctx, full["run_id"]), round_masks(other, resumed["run_id"])
    assert all(torch.equal(a[r][n], b[r][n]) for r in a for n in a[r])
    assert resumed["final_accuracy"] == full["final_accuracy"]
