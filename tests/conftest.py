"""Shared fixtures: tiny seeded models and data, and an isolated results store per test.

The tiny data set is learnable on purpose: class ``c`` lights up patch ``c`` of a 4x4 grid
(7x7-pixel patches of a 28x28 image), so tests can check that training helps and that a
good patch scorer finds the lit patch.
"""
from __future__ import annotations

import os

import pytest
import timm
import torch

os.environ.setdefault("LOTUS_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("LOTUS_THREADS", "1")  # tiny models gain nothing from threads; leaves a core for the rest
torch.set_num_threads(int(os.environ["LOTUS_THREADS"]))  # (subprocesses started by tests inherit the setting)
if not os.environ.get("LOTUS_CPU_BUDGET_DIR"):  # the host's CPU budget, private to this test session (and the
    import tempfile  # workers and CLI runs it starts): test runs beside it on the machine never hold up its tests

    os.environ["LOTUS_CPU_BUDGET_DIR"] = tempfile.mkdtemp(prefix="lotus-cpu-budget-tests-")

from lotus_core.context import Context  # noqa: E402
from lotus_core.data.images import ImageSet  # noqa: E402
from lotus_core.models.arch import data_config  # noqa: E402
from lotus_core.results.store import Store  # noqa: E402

TINY_ARCH = dict(model_name="vit_tiny_patch16_224", img_size=28, patch_size=7, in_chans=1, num_classes=10,
                 embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)


def make_tiny_vit(seed: int = 0) -> torch.nn.Module:
    """A 2-block ViT on 28x28 grayscale with a 4x4 patch grid (16 patches + CLS)."""
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in TINY_ARCH.items() if k != "model_name"}
    model = timm.create_model(TINY_ARCH["model_name"], pretrained=False, **kwargs).eval()
    model.lotus_id = f"tiny@seed{seed}"
    model.lotus_arch = dict(TINY_ARCH)
    return model


def make_tiny_imageset(n: int = 200, seed: int = 0, split: str = "test") -> ImageSet:
    """``n`` noisy 28x28 images; class c (0-9) has a bright 7x7 block at patch c of the 4x4 grid."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = (torch.rand(n, 1, 28, 28, generator=g) * 60).to(torch.uint8)
    for i, c in enumerate(labels.tolist()):
        r, q = divmod(c, 4)
        images[i, 0, r * 7:(r + 1) * 7, q * 7:(q + 1) * 7] = 230
    return ImageSet("tiny", split, images, labels, [f"class{c}" for c in range(10)], "synthetic")


def pytest_collection_modifyitems(config, items):
    """Deselect ``gpu`` tests on machines without CUDA (reported as deselected, never as skipped)."""
    if torch.cuda.is_available():
        return
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if "gpu" not in item.keywords]


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own results store and job queue; jobs run synchronously."""
    monkeypatch.setenv("LOTUS_DB", str(tmp_path / "lotus.db"))
    monkeypatch.setenv("LOTUS_JOBS_IMMEDIATE", "1")


@pytest.fixture
def tiny_vit() -> torch.nn.Module:
    return make_tiny_vit(0)


@pytest.fixture
def tiny_data() -> ImageSet:
    return make_tiny_imageset(200, seed=0)


@pytest.fixture
def tiny_ctx(tmp_path, tiny_vit) -> Context:
    """A Context over the tiny ViT, tiny test/train sets and a fresh store."""
    return Context(tiny_vit, tiny_vit.lotus_id, "tiny", data_config(tiny_vit), make_tiny_imageset(200, seed=0),
                   Store(tmp_path / "ctx.db"), _train=make_tiny_imageset(400, seed=1, split="train"))


@pytest.fixture(scope="session")
def trained_tiny_vit() -> torch.nn.Module:
    """The tiny ViT after 300 steps on the tiny task (100% test accuracy); do not modify it."""
    from lotus_core.training.train import TrainConfig, train

    model = make_tiny_vit(0)
    train(model, make_tiny_imageset(400, seed=1, split="train"),
          TrainConfig(steps=300, batch_size=32, lr=3e-3, seed=7, warmup_steps=10, weight_decay=0.0), data_config(model))
    model.lotus_id = "tiny-trained@seed0"
    return model


@pytest.fixture
def trained_tiny_ctx(tmp_path, trained_tiny_vit) -> Context:
    """Like ``tiny_ctx`` but over the trained tiny ViT."""
    return Context(trained_tiny_vit, trained_tiny_vit.lotus_id, "tiny", data_config(trained_tiny_vit),
                   make_tiny_imageset(200, seed=0), Store(tmp_path / "ctx.db"),
                   _train=make_tiny_imageset(400, seed=1, split="train"))


@pytest.fixture(scope="session")
def ray_cluster() -> str:
    """A local 2-CPU Ray cluster, started once per test session and only by tests that ask for it;
    returns its GCS address (for a second driver process)."""
    from pathlib import Path

    import ray

    from lotus_core.results.executors.ray_executor import start_local_cluster

    root = str(Path(__file__).resolve().parent.parent)  # workers import lotus_core (and tests) from here
    start_local_cluster(num_cpus=2, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": root}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(autouse=True)
def _torch_threads_unchanged():
    """Tests that run the CLI in-process set torch's threads to ``$LOTUS_THREADS`` (the shipped-store test to the
    default 2); the count is part of every result key, so each test starts from the session's count."""
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
