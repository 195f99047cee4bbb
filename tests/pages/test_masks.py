"""The Masks page on the default model: similarity against chance, with and without a stored LTH run."""
import json

import pytest
import torch

from lotus_core.context import open_context
from lotus_core.views.catalog import omp_vs_one_shot, omp_vs_tickets
from lotus_core.lottery.lth import LTHConfig, run_lth
from lotus_core.pruning import Mask, prune
from lotus_core.results.runs import run_experiment
from lotus_core.pruning.similarity import mask_similarity
from tests.pages.helpers import open_page, values


def _spec(at, i):
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def test_without_runs_omp_is_compared_with_one_shot_masks_against_chance_and_the_measure_switches():
    at = open_page("masks")
    assert not at.exception
    first = _spec(at, 0)["data"]
    assert [t["name"] for t in first][:2] == ["omp-layerwise: chance", "omp-layerwise"]
    table = omp_vs_one_shot(open_context())
    part = table[table["other"] == "omp-layerwise"]
    assert values(first[1]["y"]) == pytest.approx((100 * part["cosine"]).tolist())
    assert values(first[0]["y"]) == pytest.approx((100 * part["chance_cosine"]).tolist())
    assert "chance" in at.metric[1].label.lower()
    cos = at.metric[0].value
    at.radio[0].set_value("jaccard_pruned").run()
    assert not at.exception
    spec = _spec(at, 0)
    assert "Jaccard" in spec["layout"]["yaxis"]["title"]["text"]
    assert values(spec["data"][1]["y"]) == pytest.approx((100 * part["jaccard_pruned"]).tolist())
    assert at.metric[0].value == cos  # the same pair; only the chart's measure changed


def test_comparing_a_mask_with_itself_gives_one():
    at = open_page("masks")
    boxes = [s for s in at.selectbox if s.label in ("Mask A", "Mask B")]
    boxes[1].set_value(boxes[0].value).run()
    assert not at.exception
    assert at.metric[0].value == "100.00%"
    bars, ticks = _spec(at, 1)["data"]  # per layer: the similarity as bars, the chance level as ticks
    assert bars["type"] == "bar" and values(bars["x"]) == [100.0] * 24  # 6 blocks x (qkv, proj, fc1, fc2)
    assert bars["y"][0] == "blocks.5.mlp.fc2.weight" and ticks["name"] == "chance"
    assert all(0 < c < 100 for c in values(ticks["x"]))


def test_a_stored_lth_run_is_compared_round_by_round_with_omp():
    ctx = open_context()
    summary = run_experiment(ctx, "lth", LTHConfig(target=0.36, steps=2, batch_size=16, limit=200), run_lth)
    at = open_page("masks")
    assert not at.exception
    table = omp_vs_tickets(ctx, summary["run_id"])
    overall = table[table["layer"] == "all"]
    curve = _spec(at, 0)["data"]
    assert [t["name"] for t in curve] == ["cosine: chance", "cosine"]
    assert values(curve[1]["x"]) == pytest.approx((100 * overall["sparsity"]).tolist())
    assert values(curve[1]["y"]) == pytest.approx((100 * overall["cosine"]).tolist())
    heat = _spec(at, 1)["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == ["1", "2"] and len(heat["y"]) == len(ctx.model.blocks) * 4
    labels = [o for o in next(s for s in at.selectbox if s.label == "Mask A").options if o.startswith("LTH ")]
    assert len(labels) == 2 and labels[0].endswith("round 1 (20.0%)")


def test_an_uploaded_mask_is_compared_and_a_mismatched_one_is_a_one_line_error():
    ctx = open_context()
    at = open_page("masks")
    upload = prune(ctx.model, "omp", 0.3)
    at.file_uploader[0].set_value(("omp30.safetensors", upload.to_bytes(), "application/octet-stream")).run()
    assert not at.exception and not at.error
    label_a = next(s for s in at.selectbox if s.label == "Mask A").value
    assert label_a == "omp at 50%"
    expect = mask_similarity(prune(ctx.model, "omp", 0.5), upload)
    assert at.metric[0].value == f"{100 * expect['cosine']:.2f}%"
    bad = Mask({"w": torch.ones(3, dtype=torch.bool)})
    at.file_uploader[0].set_value(("bad.safetensors", bad.to_bytes(), "application/octet-stream")).run()
    assert not at.exception
    assert len(at.error) == 1 and "different parameters" in at.error[0].value and "\n" not in at.error[0].value


def test_the_one_shot_comparison_is_stored_and_not_recomputed_on_the_next_visit(monkeypatch):
    ctx = open_context()
    first = omp_vs_one_shot(ctx, sparsities=(0.3, 0.6), others=("random",))
    stored = ctx.store.runs(kind="omp-vs-one-shot")
    assert len(stored) == 1 and stored["config"].item()["sparsities"] == [0.3, 0.6]
    assert first["sparsity"].tolist() == [0.3, 0.6] and first["other"].tolist() == ["random", "random"]

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr("lotus_core.views.catalog.one_shot_mask", fail)
    assert omp_vs_one_shot(ctx, sparsities=(0.3, 0.6), others=("random",)).equals(first)
