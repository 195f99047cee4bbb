"""The CIFAR-10 path at a model's native 224 px input, offline: a locally generated
``cifar-10-batches-py`` (a few images), a tiny 224 px timm ViT checkpoint pre-trained on other
classes, fine-tuned to CIFAR-10, then every page's core call on the fine-tuned model."""
import pickle

import numpy as np
import pytest
import timm
import torch

from lotus_core.context import open_context
from lotus_core.lottery.common import round_masks
from lotus_core.lottery.lth import LTHConfig, run_lth
from lotus_core.models.heads import Head
from lotus_core.models.arch import data_config
from lotus_core.models.checkpoint import save_checkpoint
from lotus_core.patches import score_images
from lotus_core.pruning.sensitivity import SensitivityConfig, run_sensitivity
from lotus_core.pruning.similarity import mask_similarity
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from lotus_core.results.runs import run_experiment
from lotus_core.training.finetune import FinetuneConfig, run_finetune
from lotus_core.training.fine_tuned import fine_tuned_models
from lotus_core.views.experiments import run_table
from lotus_core.views.overview import sample_predictions
from lotus_core.views.report import ReportOptions, build_report

ARCH = dict(model_name="vit_tiny_patch16_224", img_size=224, patch_size=32, in_chans=3, num_classes=10, embed_dim=16,
            depth=2, num_heads=2, mlp_ratio=2.0)


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """cifar-10-batches-py with 8 images per training batch and 20 test images (class = i % 10)."""
    import torchvision.datasets.cifar as cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 8) for i in range(1, 6)), ("test_batch", 20)]:
        labels = [i % 10 for i in range(n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    # the real files' md5 sums cannot match generated ones; everything else is torchvision's own path
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    return tmp_path


def test_cifar10_at_224px_fine_tunes_and_serves_every_page(cifar_root, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model(ARCH["model_name"], pretrained=False, **{k: v for k, v in ARCH.items()
                                                                         if k != "model_name"}).eval()
    model.lotus_arch = dict(ARCH)
    model.lotus_head = Head("trained", 10, "upstream", tuple(f"u{i}" for i in range(10)))
    path = save_checkpoint(model, tmp_path / "pre.safetensors")
    db = tmp_path / "s.db"
    pre = open_context(str(path), "cifar10", db=db, data_root=cifar_root)
    assert pre.data_config["input_size"] == (3, 224, 224) and pre.test.images.shape == (20, 3, 32, 32)
    assert len(pre.train) == 40 and pre.head.state == "new"
    ft = run_experiment(pre, "finetune", FinetuneConfig(epochs=1, batch_size=8, limit=20), run_finetune)
    assert ft["epochs"] == 1 and len(ft["per_epoch"]) == 1 and ft["dataset"] == "cifar10"
    ctx = open_context(ft["checkpoint"], "cifar10", db=db, data_root=cifar_root)
    assert ctx.model_id == ft["model_id"] and ctx.head_problem is None
    assert ctx.dense_accuracy(limit=20)["accuracy"] == ft["accuracy"]  # Overview
    assert len(sample_predictions(ctx, n=4)) == 4
    curve = run_sweep(ctx, SweepConfig(methods=("omp", "random"), sparsities=(0.0, 0.5), limit=20))  # Sparsity curves
    assert curve.frame["sparsity_reached"].tolist() == [0.5, 0.5]
    assert run_sensitivity(ctx, SensitivityConfig((0.5,), 20)).shape == (8, 1)  # 2 blocks x qkv/proj/fc1/fc2
    lth = run_experiment(ctx, "lth", LTHConfig(target=0.4, prune_fraction=0.4, steps=1, batch_size=8, limit=20),
                         run_lth)  # Soup
    masks = round_masks(ctx.store, lth["run_id"])
    assert mask_similarity(masks[1], masks[1])["cosine"] == 1.0  # Masks
    scores = score_images(ctx.model, ctx.test.images[:2], ctx.data_config, "rollout")  # Patches
    assert scores.shape == (2, 49)
    report = build_report(ctx, ReportOptions(limit=20))  # Report
    assert report.section("dense").value == ft["accuracy"]
    assert {"finetune", "sweep", "lth"} <= set(run_table(ctx.store)["kind"])  # Experiments
    assert [m["model_id"] for m in fine_tuned_models(ctx.store)] == [ft["model_id"]]  # the sidebar's list
