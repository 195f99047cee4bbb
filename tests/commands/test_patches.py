"""The patches, fidelity and lottery-train commands, in-process on the default model with tiny budgets."""
import json

import pytest
import timm
import torch

from lotus_core.context import open_context
from lotus_core.training.evaluate import predict
from lotus_core.patches.ticket_training import LotteryTrainConfig
from lotus_core.models.checkpoint import save_checkpoint
from lotus_core.patches import ScoreOptions
from lotus_core.patches.analysis import explain_images
from lotus_core.patches.fidelity import FidelityConfig, fidelity
from lotus_core.results.runs import stored_summary
from tests.commands.test_core import run_cli


def test_patches_prints_scores_and_the_kept_and_dropped_patches(capsys, tmp_path):
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "patches", "--index", "0", "--index", "3", "--score", "rollout", "--drop", "0.1",
                             "--json", "--db", str(db))
    assert code == 0, err
    res = json.loads(out)
    assert res["grid"] == [7, 7] and res["scorer"] == "rollout" and res["drop"] == 0.1 and res["dropped_per_image"] == 5
    ctx = open_context(db=db)
    expect = explain_images(ctx, "rollout", 0.1, ScoreOptions(), indices=[0, 3]).records()
    assert [im["index"] for im in res["images"]] == [0, 3]
    for got, want in zip(res["images"], expect):
        assert {k: v for k, v in got.items() if k != "scores"} == {k: v for k, v in want.items() if k != "scores"}
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)
        assert len(got["scores"]) == 49 and len(got["dropped"]) == 5
        assert sorted(got["kept"] + got["dropped"]) == list(range(49))
        assert max(got["scores"][p] for p in got["dropped"]) <= min(got["scores"][p] for p in got["kept"])
        assert got["label"] == int(ctx.test.labels[got["index"]])
    preds = predict(ctx.model, ctx.test.images[[0, 3]], ctx.data_config, bf16=False).tolist()
    assert [im["prediction"] for im in res["images"]] == preds


@pytest.mark.parametrize("args, message", [
    (["patches", "--drop", "1.0"], "argument --drop: 1.0 is outside [0, 1)"),
    (["patches", "--drop", "10"], "10 is outside [0, 1); give a fraction such as 0.5 (not a percentage)"),
    (["patches", "--index", "10000"], "index 10000 is outside the test split (0..9999)"),
    (["patches", "--index", "-1"], "index -1 is outside the test split (0..9999)"),
    (["patches", "--score", "magic"], "argument --score: invalid choice: 'magic'"),
    (["patches", "--block", "9"], "block 9 does not exist; the model has 6 blocks"),
    (["fidelity", "--score", "cls,magic"], "unknown patch scorer 'magic'"),
    (["lottery-train", "--start", "midway"], "argument --start: invalid choice: 'midway'"),
])
def test_bad_patch_arguments_exit_2_with_one_line(capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, *args, "--db", str(tmp_path / "r.db"))
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err, err


def test_a_cnn_checkpoint_is_refused_in_one_line_by_every_scorer(capsys, tmp_path):
    """LOTUS handles timm VisionTransformer-family models only (scopes, heads, patch grids and speed methods
    address a ViT's blocks): a CNN checkpoint is refused on loading, whatever the scorer."""
    cnn = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    cnn.lotus_arch = {"model_name": "test_resnet", "num_classes": 10}
    path = save_checkpoint(cnn, tmp_path / "cnn.safetensors")
    for scorer in ("cls", "rollout", "random"):
        code, out, err = run_cli(capsys, "patches", "--model", str(path), "--score", scorer, "--db", str(tmp_path / "r.db"))
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "is a ResNet, not a Vision Transformer; LOTUS handles timm VisionTransformer-family models" in err


def test_fidelity_reports_what_the_core_stores(capsys, tmp_path):
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "fidelity", "--score", "cls,random", "--limit", "20", "--steps", "4", "--curves",
                             "--json", "--db", str(db))
    assert code == 0, err
    res = json.loads(out)
    core = fidelity(open_context(db=db), FidelityConfig(scorers=("cls", "random"), limit=20, steps=4))
    assert res["images"] == 20 and res["grid"] == [7, 7] and res["run_id"] == core.summary["run_id"]
    assert res["auc"] == core.auc.to_dict(orient="records")
    assert [(r["scorer_a"], r["scorer_b"]) for r in res["agreement"]] == [("cls", "random")]
    assert len(res["curves"]) == 2 * 2 * 5


def test_lottery_train_runs_the_stored_experiment(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOTUS_NO_SYSTEM_DATA", "1")  # the embedded 10,000-image split, whatever the machine has
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "lottery-train", "--start", "pretrained", "--epochs", "1", "--steps-per-epoch", "1",
                             "--batch-size", "8", "--fraction", "0.003", "--limit", "40", "--json", "--db", str(db))
    assert code == 0, err
    res = json.loads(out)
    cfg = LotteryTrainConfig(start="pretrained", epochs=1, steps_per_epoch=1, batch_size=8, fraction=0.003, limit=40)
    stored = stored_summary(open_context(db=db), "lottery-train", cfg)
    assert res["run_id"] == stored["run_id"] and res["images"] == 30 and res["patches_dropped"] == 5
    assert [(p["arm"], p["epoch"]) for p in res["points"]] == [("full", 1), ("lottery", 1)]
    assert res["lottery"]["accuracy"] == stored["lottery"]["accuracy"] == [res["points"][1]["accuracy"]]
    assert torch.tensor([p["steps"] for p in res["points"]]).tolist() == [1, 1]
