"""Deletion/insertion curves, their areas and agreement between scorers."""
import numpy as np
import pandas as pd
import pytest
import torch

from lotus_core.training.evaluate import predict
from lotus_core.patches import fidelity as fidelity_module
from lotus_core.patches.fidelity import (FidelityConfig, agreement, auc, curve_counts, deletion_insertion,
                                         fidelity)
from lotus_core.patches.select import fill_value


def test_curve_counts_are_whole_patches_from_none_to_all():
    assert curve_counts(49, 10) == [0, 5, 10, 15, 20, 25, 29, 34, 39, 44, 49]
    assert curve_counts(16, 4) == [0, 4, 8, 12, 16]
    assert curve_counts(4, 10) == [0, 1, 2, 3, 4]


def test_auc_is_the_trapezoid_over_the_fraction():
    curve = pd.DataFrame({"fraction": [0.0, 0.5, 1.0], "accuracy": [1.0, 0.5, 0.0]})
    assert auc(curve) == pytest.approx(0.5)
    assert auc(pd.DataFrame({"fraction": [1.0, 0.0, 0.25], "accuracy": [0.2, 1.0, 1.0]})) == pytest.approx(
        0.25 + 0.75 * 0.6)


def test_agreement_of_a_scorer_with_itself_and_its_reverse():
    s = torch.rand(5, 16, generator=torch.Generator().manual_seed(0))
    table = agreement({"a": s, "same": s.clone(), "reverse": -s}, top_k=0.25, drop=0.25)
    rows = table.set_index(["scorer_a", "scorer_b"])
    assert rows.loc[("a", "same"), ["spearman", "topk_overlap", "dropped_overlap"]].tolist() == pytest.approx([1, 1, 1])
    assert rows.loc[("a", "reverse"), ["spearman", "topk_overlap", "dropped_overlap"]].tolist() == pytest.approx([-1, 0, 0])
    assert rows.loc[("a", "same"), "topk_chance"] == 0.25 and rows.loc[("a", "same"), "dropped_chance"] == 0.25
    assert len(table) == 3


def test_deletion_and_insertion_curves_on_the_trained_tiny_vit(trained_tiny_ctx):
    """The tiny task's evidence is one lit patch per image: an oracle scorer that ranks it first
    kills accuracy after one deleted patch; the curves start and end where they must."""
    ctx = trained_tiny_ctx
    images, labels = ctx.test.images[:40], ctx.test.labels[:40]
    fill = fill_value(ctx.train, ctx.data_config)
    oracle = torch.nn.functional.one_hot(labels, 16).float()  # class c lights patch c of the 4x4 grid
    curve = deletion_insertion(ctx, images, labels, oracle, fill, steps=16)
    dense = float((predict(ctx.model, images, ctx.data_config) == labels).float().mean())
    deletion = curve[curve["mode"] == "deletion"].set_index("patches")["accuracy"]
    insertion = curve[curve["mode"] == "insertion"].set_index("patches")["accuracy"]
    assert dense == 1.0 and deletion[0] == dense and insertion[16] == dense
    assert deletion[16] == insertion[0]  # both are the all-mean image
    assert deletion[1] <= 0.1 and insertion[1] >= 0.9  # the lit patch is all the evidence
    assert curve["fraction"].tolist() == [c / 16 for c in range(17) for _ in range(2)]


def test_fidelity_is_stored_and_served_from_the_store(tiny_ctx, monkeypatch):
    cfg = FidelityConfig(scorers=("cls", "rollout", "random"), limit=30, steps=4)
    result = fidelity(tiny_ctx, cfg)
    assert result.curves.shape == (3 * 2 * 5, 5) and list(result.auc["scorer"]) == ["cls", "rollout", "random"]
    assert list(result.agreement[["scorer_a", "scorer_b"]].itertuples(index=False, name=None)) == [
        ("cls", "rollout"), ("cls", "random"), ("rollout", "random")]
    for _, row in result.auc.iterrows():
        part = result.curves[result.curves["scorer"] == row["scorer"]]
        assert row["deletion_auc"] == pytest.approx(auc(part[part["mode"] == "deletion"]))
    assert result.summary["images"] == 30 and result.summary["grid"] == [4, 4]
    from safetensors.torch import load

    stored = load(tiny_ctx.store.get_blob(result.summary["run_id"], "scores-random.safetensors"))["scores"]
    assert stored.shape == (30, 16)

    def forbidden(*a, **k):
        raise AssertionError("recomputed a stored result")

    monkeypatch.setattr(fidelity_module, "score_images", forbidden)
    again = fidelity(tiny_ctx, cfg)
    pd.testing.assert_frame_equal(again.curves, result.curves)
    assert np.allclose(again.agreement["spearman"], result.agreement["spearman"], equal_nan=True)
