"""Fine-tuned checkpoints (issue 23, sections 3 and 4): a dataset with another class count gets a head of its
size, and the checkpoint reloads with that trained head to exactly its stored accuracy, from every kind of
source (the default model, a timm name with --weights, a checkpoint file), from the CLI and the dashboard's
model list; a resumed fine-tune writes the same bytes and id as an uninterrupted one; the default recipe
scales the learning rate to the model and stores it in the key, the paper's recipe is a preset."""
import json
import math
import os

import pytest
import torch

from benchmarks.bench_finetune_recipe import write_digits_folder
from lotus_core import cli
from lotus_core.context import open_context
from lotus_core.core.errors import LotusError
from lotus_core.models.heads import Head
from lotus_core.models.checkpoint import canonical_safetensors, load_checkpoint, save_checkpoint
from lotus_core.models.loading import count_parameters
from lotus_core.results.runs import run_experiment
from lotus_core.results.store import Store
from lotus_core.training.finetune import FinetuneConfig, PRESETS, fit_lr, preset_config, run_finetune
from lotus_core.training.fine_tuned import fine_tuned_models

from tests.conftest import make_tiny_vit

UPSTREAM = Head("trained", 10, "tiny-upstream", tuple(f"up{c}" for c in range(10)))
FT = ["--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--limit", "50"]


@pytest.fixture(scope="module")
def five_digits(tmp_path_factory):
    """scikit-learn's digits 0-4, 12 of each (real images): 10 trained on and 2 held out per class."""
    return write_digits_folder(tmp_path_factory.mktemp("digits") / "five", range(5), per_class=12)


@pytest.fixture
def tiny_checkpoint(tmp_path, trained_tiny_vit):
    """The trained tiny ViT (10 outputs) saved as if its head were trained on ten other classes."""
    return save_checkpoint(trained_tiny_vit, tmp_path / "pretrained.safetensors", {"lotus_head": UPSTREAM.to_json()})


def run_cli(capsys, *argv) -> dict:
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("source", ["default", "timm --weights", "checkpoint"])
def test_a_five_class_fine_tune_reloads_with_its_trained_head(source, five_digits, tiny_checkpoint, tmp_path, capsys,
                                                              monkeypatch):
    model = {"default": ["--model", "default"],
             "timm --weights": ["--model", "vit_tiny_patch16_224", "--weights", str(tiny_checkpoint)],
             "checkpoint": ["--model", str(tiny_checkpoint)]}[source]
    common = ["--dataset", str(five_digits), "--db", str(tmp_path / "s.db")]
    out = run_cli(capsys, "finetune", *model, *common, *FT)
    assert (out["train_images"], out["test_images"]) == (50, 10) and "20% of each class" in out["split"]
    saved = load_checkpoint(out["checkpoint"])
    assert saved.get_classifier().out_features == 5 and json.loads(saved.lotus_meta["lotus_arch"])["num_classes"] == 5
    assert saved.lotus_head == Head("trained", 5, str(five_digits), ("0", "1", "2", "3", "4"))
    again = run_cli(capsys, "evaluate", "--model", out["checkpoint"], "--limit", "50", *common)
    assert again["model"] == out["model_id"] and "+head" not in again["model"] and "head" not in again
    assert again["accuracy"] == out["accuracy"] and again["ci95"] == out["ci95"]
    if source == "default":  # the tiny ViT, pre-trained on synthetic squares, learns little of digits in 2 epochs
        assert out["accuracy"] >= 0.5 > 0.2 == 1 / 5  # above chance
    # the dashboard: the store's fine-tuned models are in the sidebar's list, and picking one opens this context
    from app import state

    monkeypatch.setenv("LOTUS_DB", str(tmp_path / "s.db"))
    choices, labels = state.model_choices()
    assert out["checkpoint"] in choices and labels[out["checkpoint"]].startswith("fine-tuned:")
    picked = open_context(out["checkpoint"], str(five_digits), db=tmp_path / "s.db", device="cpu")
    assert picked.model_id == out["model_id"] and picked.head_problem is None
    assert torch.equal(picked.model.get_classifier().weight, saved.get_classifier().weight)  # the trained head
    assert picked.evaluate(limit=50).accuracy == out["accuracy"]


def test_a_test_only_folder_cannot_be_fine_tuned_on(five_digits, tmp_path, capsys):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "test").symlink_to(five_digits)
    assert cli.main(["finetune", "--dataset", str(tmp_path / "only"), "--db", str(tmp_path / "s.db"), *FT]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no training images" in err and "add a train/ folder" in err and "\n" not in err
    assert Store(tmp_path / "s.db").runs().empty  # refused before a run was recorded
    one = write_digits_folder(tmp_path / "one", range(1), per_class=5)
    assert cli.main(["finetune", "--dataset", str(one), "--db", str(tmp_path / "s.db"), *FT]) == 2
    err = capsys.readouterr().err.strip()
    assert "a classifier needs at least two class folders" in err and "\n" not in err  # refused by the loader
    assert Store(tmp_path / "s.db").runs().empty


def test_a_resumed_fine_tune_writes_the_same_checkpoint_and_id(tiny_checkpoint, five_digits, tmp_path):
    recipe = FinetuneConfig(epochs=2, lr=1e-3, batch_size=16, limit=50)

    def ctx(folder: str):
        (tmp_path / folder).mkdir(exist_ok=True)
        return open_context(str(tiny_checkpoint), str(five_digits), db=tmp_path / folder / "s.db", device="cpu")

    once = run_experiment(ctx("once"), "finetune", recipe, run_finetune)

    def interrupt(fields: dict) -> None:  # the first step of epoch 2: epoch 1 and its state are stored
        if fields.get("epoch") == 2 and "step" in fields:
            raise KeyboardInterrupt

    resumed_ctx = ctx("resumed")
    with pytest.raises(KeyboardInterrupt):
        run_experiment(resumed_ctx, "finetune", recipe, run_finetune, on_progress=interrupt)
    assert list(resumed_ctx.store.points(once["run_id"])) == ["epoch-1"]
    resumed = run_experiment(ctx("resumed"), "finetune", recipe, run_finetune)
    assert resumed["model_id"] == once["model_id"] and resumed["checkpoint"] != once["checkpoint"]
    with open(once["checkpoint"], "rb") as a, open(resumed["checkpoint"], "rb") as b:
        assert a.read() == b.read()  # the same weights, header and bytes
    meta = load_checkpoint(once["checkpoint"]).lotus_meta
    assert "lotus_train_seconds" not in meta and once["seconds"] > 0  # the time is in the run, not the file


def test_checkpoint_bytes_do_not_depend_on_header_order(tmp_path):
    from safetensors.torch import save

    tensors = {"b": torch.arange(3.0), "a": torch.ones(2, 2)}
    one = save(tensors, metadata={f"k{i}": str(i) for i in range(12)})
    other = save(tensors, metadata={f"k{i}": str(i) for i in reversed(range(12))})
    assert canonical_safetensors(one) == canonical_safetensors(other)
    n = int.from_bytes(canonical_safetensors(one)[:8], "little")
    assert n % 8 == 0 and canonical_safetensors(one)[8 + n:] == one[8 + int.from_bytes(one[:8], "little"):]
    model = make_tiny_vit(0)
    a = save_checkpoint(model, tmp_path / "a.safetensors", {f"k{i}": str(i) for i in range(12)})
    b = save_checkpoint(model, tmp_path / "b.safetensors", {f"k{i}": str(i) for i in reversed(range(12))})
    assert a.read_bytes() == b.read_bytes()


def test_fit_lr_scales_the_papers_rate_by_model_size():
    tiny = make_tiny_vit(0)
    n = count_parameters(tiny)
    raw = 2e-5 * (86_567_656 / n) ** 0.78  # the formula, stated independently
    assert fit_lr(tiny) == float(f"{min(max(raw, 2e-5), 3e-3):.2g}") == 3e-3  # the tiny ViT is clipped at 3e-3
    from lotus_core.models.loading import load_model

    default = load_model("default")
    assert count_parameters(default) == 567_562 and fit_lr(default) == 1e-3
    assert float(f"{2e-5 * (86_567_656 / 567_562) ** 0.78:.2g}") == 1e-3
    assert preset_config(default) == FinetuneConfig(epochs=8, lr=1e-3)
    assert preset_config(default, "essential-sparsity") == FinetuneConfig()  # the paper's: AdamW 2e-5, 8 epochs
    assert FinetuneConfig().lr == 2e-5 and PRESETS["essential-sparsity"].lr == 2e-5
    assert preset_config(default, lr=3e-4, epochs=None).lr == 3e-4
    with pytest.raises(LotusError, match="unknown fine-tuning preset"):
        preset_config(default, "fastest")


def test_the_default_recipe_is_the_fitted_one_and_in_the_key(five_digits, tmp_path, capsys):
    common = ["--dataset", str(five_digits), "--db", str(tmp_path / "s.db"), "--epochs", "1", "--limit", "10"]
    fit = run_cli(capsys, "finetune", *common)
    assert fit["preset"] == "fit" and fit["lr"] == 1e-3
    paper = run_cli(capsys, "finetune", "--preset", "essential-sparsity", *common)
    assert paper["lr"] == 2e-5 and paper["run_id"] != fit["run_id"]
    runs = fine_tuned_models(open_context("default", str(five_digits), db=tmp_path / "s.db").store)
    assert {r["run_id"] for r in runs} == {fit["run_id"], paper["run_id"]}
    stored = Store(tmp_path / "s.db").get_run(fit["run_id"])["config"]
    assert stored["lr"] == 1e-3 and stored["epochs"] == 1
    assert math.isclose(Store(tmp_path / "s.db").get_run(paper["run_id"])["config"]["lr"], 2e-5)
    assert os.path.isfile(fit["checkpoint"])
