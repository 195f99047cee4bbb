"""Transfer: a pre-trained tiny timm ViT loaded through --weights gets a seeded new head, is
fine-tuned (resumably, every epoch stored), and its checkpoint reloads to identical predictions.
A model whose head is not trained on the dataset is refused by every pruning experiment."""
import json

import pytest
import torch

from lotus_core import cli
from lotus_core.context import Context
from lotus_core.core.errors import LotusError
from lotus_core.lottery.lth import LTHConfig, run_lth
from lotus_core.models.heads import Head
from lotus_core.models.arch import data_config
from lotus_core.models.checkpoint import load_checkpoint, save_checkpoint
from lotus_core.models.loading import load_model
from lotus_core.pruning.sweep import PointEvaluator, SweepConfig, run_sweep
from lotus_core.results.runs import run_experiment
from lotus_core.results.store import Store
from lotus_core.training.evaluate import predict
from lotus_core.training.finetune import FinetuneConfig, run_finetune
from lotus_core.training.fine_tuned import fine_tuned_models

from tests.conftest import make_tiny_imageset

UPSTREAM = Head("trained", 10, "tiny-upstream", tuple(f"up{c}" for c in range(10)))
RECIPE = FinetuneConfig(epochs=4, lr=5e-3, batch_size=32, limit=200, augment=False)  # 12 steps per epoch
NO_HEAD = "head not trained on this dataset: fine-tune it first"


@pytest.fixture
def weights_file(tmp_path, trained_tiny_vit):
    """The tiny ViT pre-trained on the tiny task, saved as if its head were trained on other classes."""
    return save_checkpoint(trained_tiny_vit, tmp_path / "pretrained.safetensors", {"lotus_head": UPSTREAM.to_json()})


def transfer_ctx(weights_file, store_path, head_seed: int = 0) -> Context:
    test = make_tiny_imageset(200, seed=0)
    model = load_model("vit_tiny_patch16_224", num_classes=10, weights=weights_file, head_seed=head_seed,
                       classes=test.classes)
    return Context(model, model.lotus_id, "tiny", data_config(model), test, Store(store_path),
                   _train=make_tiny_imageset(400, seed=1, split="train"))


def test_weights_file_gets_a_seeded_new_head_marked_untrained(weights_file, tmp_path):
    a, b = transfer_ctx(weights_file, tmp_path / "a.db"), transfer_ctx(weights_file, tmp_path / "b.db")
    c = transfer_ctx(weights_file, tmp_path / "c.db", head_seed=1)
    assert a.head == Head("new", 10, seed=0) and a.model_id.endswith("+head0") and c.model_id.endswith("+head1")
    assert torch.equal(a.model.head.weight, b.model.head.weight)  # two processes, the same head
    assert not torch.equal(a.model.head.weight, c.model.head.weight)
    assert torch.equal(a.model.blocks[0].attn.qkv.weight, c.model.blocks[0].attn.qkv.weight)  # backbone kept
    assert a.head_problem == NO_HEAD
    assert 0.05 <= a.evaluate(limit=200).accuracy <= 0.2  # chance is 0.1


def test_untrained_head_is_never_pruned_or_reported(weights_file, tmp_path):
    ctx = transfer_ctx(weights_file, tmp_path / "s.db")
    for attempt in (lambda: run_sweep(ctx, SweepConfig(sparsities=(0.5,), limit=50)),
                    lambda: PointEvaluator(ctx, SweepConfig(limit=50)),
                    lambda: run_experiment(ctx, "lth", LTHConfig(target=0.4, steps=1, limit=50), run_lth)):
        with pytest.raises(LotusError, match=NO_HEAD):
            attempt()
    assert ctx.store.runs().empty  # nothing was stored as if it were a result


def test_finetune_rises_from_chance_and_the_checkpoint_reproduces_it(weights_file, tmp_path):
    ctx = transfer_ctx(weights_file, tmp_path / "f.db")
    summary = run_experiment(ctx, "finetune", RECIPE, run_finetune)
    assert summary["accuracy_before"] <= 0.2 and summary["accuracy"] >= 0.95
    assert len(summary["per_epoch"]) == 4 and summary["per_epoch"][-1] == summary["accuracy"]
    assert sorted(ctx.store.points(summary["run_id"])) == ["epoch-1", "epoch-2", "epoch-3", "epoch-4"]
    reloaded = load_checkpoint(summary["checkpoint"])
    assert reloaded.lotus_id == summary["model_id"]
    assert reloaded.lotus_head == Head("trained", 10, "tiny", tuple(ctx.test.classes))
    meta = reloaded.lotus_meta
    assert meta["lotus_source"] == ctx.model_id and meta["lotus_dataset"] == "tiny"
    assert json.loads(meta["lotus_recipe"])["lr"] == RECIPE.lr and meta["lotus_seed"] == "0"
    assert meta["lotus_dataset_variant"] == ctx.train.variant and meta["lotus_dataset_variant"].startswith("400@")
    fine = ctx.evaluate(reloaded, limit=200)
    assert fine.accuracy == summary["accuracy"] and list(fine.ci95) == summary["ci95"]
    ref = Context(reloaded, reloaded.lotus_id, "tiny", data_config(reloaded), ctx.test, ctx.store, _train=ctx.train)
    assert ref.head_problem is None  # now prunable
    run_sweep(ref, SweepConfig(sparsities=(0.5,), limit=50))
    assert [m["checkpoint"] for m in fine_tuned_models(ctx.store)] == [summary["checkpoint"]]


def test_finetune_resumes_by_epoch_to_the_same_weights(weights_file, tmp_path):
    (tmp_path / "once").mkdir(), (tmp_path / "resume").mkdir()  # checkpoints go to models/ beside each store
    once = run_experiment(transfer_ctx(weights_file, tmp_path / "once" / "s.db"), "finetune", RECIPE, run_finetune)
    ctx = transfer_ctx(weights_file, tmp_path / "resume" / "s.db")

    def interrupt(fields: dict) -> None:
        if fields.get("epoch") == 2 and fields.get("step", 0) > 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(ctx, "finetune", RECIPE, run_finetune, on_progress=interrupt)
    run_id = once["run_id"]
    assert ctx.store.get_run(run_id)["status"] == "interrupted" and list(ctx.store.points(run_id)) == ["epoch-1"]
    resumed = run_experiment(ctx, "finetune", RECIPE, run_finetune)
    assert resumed["per_epoch"] == once["per_epoch"]
    assert once["checkpoint"] != resumed["checkpoint"]
    a, b = load_checkpoint(once["checkpoint"]), load_checkpoint(resumed["checkpoint"])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_head_only_trains_the_classifier_alone(weights_file, tmp_path):
    ctx = transfer_ctx(weights_file, tmp_path / "h.db")
    summary = run_experiment(ctx, "finetune", FinetuneConfig(epochs=6, lr=1e-2, batch_size=32, limit=200, augment=False,
                                                             head_only=True), run_finetune)
    probe = load_checkpoint(summary["checkpoint"])
    base = ctx.model.state_dict()
    changed = [k for k, v in probe.state_dict().items() if not torch.equal(v, base[k])]
    assert changed == ["head.weight", "head.bias"] and summary["accuracy"] >= 0.9


def test_essential_protocol_fine_tunes_dense_and_every_masked_model(weights_file, tmp_path):
    ctx = transfer_ctx(weights_file, tmp_path / "e.db")
    config = SweepConfig(sparsities=(0.0, 0.5), limit=200, protocol="essential", recipe=RECIPE)
    result = run_sweep(ctx, config)
    dense = run_experiment(ctx, "finetune", config.finetune_recipe(), run_finetune)
    assert result.dense["accuracy"] == dense["accuracy"] >= 0.95  # the dense line is the fine-tuned dense model
    assert result.frame["accuracy"].iloc[0] >= 0.9  # the 50% mask of the pre-trained weights, fine-tuned
    assert result.frame["sparsity_reached"].iloc[0] == 0.5


def test_checkpoint_of_other_classes_gets_a_new_head(tmp_path, trained_tiny_vit):
    trained_tiny_vit.lotus_head = Head("trained", 10, "tiny", tuple(f"class{c}" for c in range(10)))
    path = save_checkpoint(trained_tiny_vit, tmp_path / "m.safetensors")
    del trained_tiny_vit.lotus_head
    same = load_model(str(path), classes=[f"class{c}" for c in range(10)])
    other = load_model(str(path), classes=[f"cat{c}" for c in range(10)], head_seed=4)
    fewer = load_model(str(path), classes=["a", "b", "c"])
    assert same.lotus_head.state == "trained" and torch.equal(same.head.weight, trained_tiny_vit.head.weight)
    assert other.lotus_head == Head("new", 10, seed=4) and other.lotus_id.endswith("+head4")
    assert fewer.lotus_head == Head("new", 3, seed=0) and fewer.head.weight.shape == (3, 16)


def test_cli_finetune_then_evaluate_reproduces_the_accuracy(weights_file, tmp_path, capsys):
    from PIL import Image

    data = make_tiny_imageset(60, seed=2)
    for i, (img, label) in enumerate(zip(data.images, data.labels)):
        folder = tmp_path / "folder" / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i}.png")
    common = ["--dataset", str(tmp_path / "folder"), "--db", str(tmp_path / "cli.db"), "--json"]
    assert cli.main(["finetune", "--model", "vit_tiny_patch16_224", "--weights", str(weights_file), "--epochs", "2",
                     "--lr", "3e-3", "--batch-size", "16", "--limit", "60", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"model_id", "checkpoint", "accuracy", "ci95", "epochs", "seconds"} <= set(out) and out["epochs"] == 2
    assert cli.main(["evaluate", "--model", out["checkpoint"], "--limit", "60", *common]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model"] == out["model_id"] and again["accuracy"] == out["accuracy"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "no_such_vit"], "unknown model 'no_such_vit'"),
    (["--model", "vit_tiny_patch16_224.no_such_tag"], "unknown pretrained tag 'no_such_tag'"),
    (["--model", "vit_small_patch16_224", "--weights", "WEIGHTS"], "does not fit vit_small_patch16_224"),
    (["--model", "test_vit", "--weights", "LOTUS"], "holds a vit_tiny_patch16_224, not a test_vit"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--model", "vit_tiny_patch16_224.augreg_in21k"], "from the hub ("),
])
def test_hub_and_device_failures_are_one_line(argv, message, weights_file, tmp_path, capsys):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"  # a plain state dict of another architecture
    save_file({"pos_embed": torch.zeros(1, 5, 16)}, str(foreign))
    argv = [str(foreign) if a == "WEIGHTS" else str(weights_file) if a == "LOTUS" else a for a in argv]
    assert cli.main(["info", *argv, "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    if "hub" in message:  # offline: what to do
        assert err.endswith("go online or pass --weights FILE")
