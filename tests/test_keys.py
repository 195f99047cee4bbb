"""A result key names everything that changes the numbers: the data actually loaded (content hash
of each split), the precision actually used, the device type and the CPU thread count."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lotus_core.core import device
from lotus_core.core.context import open_context
from lotus_core.data import load_dataset
from scripts.build_embedded_fmnist import write_idx
from lotus_core.results.store import config_id


def test_key_names_data_variant_precision_device_and_threads(tiny_ctx):
    key = tiny_ctx.key(kind="evaluate", limit=100, seed=0)
    test, train = tiny_ctx.test, tiny_ctx.train
    assert key == {"model": "tiny@seed0", "dataset": "tiny",
                   "data": {"test": f"200@{test.digest[:16]}", "train": f"400@{train.digest[:16]}"},
                   "device": "cpu", "precision": device.precision_used(torch.device("cpu")),
                   "threads": 1, "kind": "evaluate", "limit": 100, "seed": 0}
    assert len(test.digest) == 64 and test.digest != train.digest


def test_the_embedded_subset_and_the_full_training_set_give_different_keys(tiny_ctx, tmp_path, monkeypatch):
    """The same name, split and configuration: the content hash tells the two training sets apart."""
    full = tmp_path / "full"
    full.mkdir()
    embedded = load_dataset("fashion-mnist", "train")  # conftest hides system data: the embedded subset
    images, labels = embedded.images[:, 0].numpy(), embedded.labels.numpy().astype(np.uint8)
    write_idx(full / "train-images-idx3-ubyte.gz", np.concatenate([images, images[:5]]))
    write_idx(full / "train-labels-idx1-ubyte.gz", np.concatenate([labels, labels[:5]]))
    bigger = load_dataset("fashion-mnist", "train", full)
    assert (len(embedded), len(bigger)) == (10_000, 10_005)
    a = dataclasses.replace(tiny_ctx, _train=embedded).key(kind="lth", steps=10)
    b = dataclasses.replace(tiny_ctx, _train=bigger).key(kind="lth", steps=10)
    assert a["data"]["train"].startswith("10000@") and b["data"]["train"].startswith("10005@")
    assert config_id(a) != config_id(b)
    # the same content read from another folder is the same variant (the hash is of the content)
    write_idx(full / "train-images-idx3-ubyte.gz", images)
    write_idx(full / "train-labels-idx1-ubyte.gz", labels)
    assert load_dataset("fashion-mnist", "train", full).variant == embedded.variant


def test_precision_in_the_key_is_the_one_used_not_the_one_asked(tiny_ctx, monkeypatch):
    monkeypatch.setattr(device, "bf16_available", lambda dev: False)
    assert tiny_ctx.key(kind="evaluate")["precision"] == "fp32"  # bf16 asked (the default), fp32 used
    assert tiny_ctx.key(kind="evaluate", bf16=False)["precision"] == "fp32"
    monkeypatch.setattr(device, "bf16_available", lambda dev: True)
    assert tiny_ctx.key(kind="evaluate")["precision"] == "bf16"
    assert tiny_ctx.key(kind="evaluate", bf16=False)["precision"] == "fp32"


def test_lotus_threads_sets_the_compute_threads_and_the_key(monkeypatch, tmp_path):
    """The CLI, the worker and the dashboard all open their Context with open_context, which applies
    $LOTUS_THREADS (default 2 on every machine, so default keys travel); the key records the count used."""
    monkeypatch.setenv("LOTUS_THREADS", "2")
    try:
        ctx = open_context(db=tmp_path / "r.db")
        assert torch.get_num_threads() == 2 and ctx.key()["threads"] == 2
        monkeypatch.delenv("LOTUS_THREADS")
        assert device.compute_threads() == device.DEFAULT_THREADS == 2
    finally:
        torch.set_num_threads(1)
