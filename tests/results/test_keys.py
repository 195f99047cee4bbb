"""A result key names what a result IS: the model, the data it actually reads (content hash of each split it
reads), the method's hyperparameters and the precision policy. Where it was computed (device type, precision
actually used, thread count) is not in the key: it is part of the run id (silent reuse), and a result computed
elsewhere is served labelled (docs/provenance.md)."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lotus_core.core import device
from lotus_core.context import open_context
from lotus_core.data import load_dataset
from scripts.build_embedded_fmnist import write_idx
from lotus_core.results.keys import config_id


def test_key_names_model_data_read_and_precision_policy_only(tiny_ctx):
    key = tiny_ctx.key(kind="evaluate", limit=100, seed=0)
    test = tiny_ctx.test
    assert key == {"model": "tiny@seed0", "dataset": "tiny", "data": {"test": f"200@{test.digest[:16]}"},
                   "precision": "auto", "kind": "evaluate", "limit": 100, "seed": 0}
    assert len(test.digest) == 64 and test.digest != tiny_ctx.train.digest
    assert tiny_ctx.computed() == {"device": "cpu", "precision": device.precision_used(torch.device("cpu")),
                                   "threads": 1}


def test_only_experiments_that_read_training_images_have_the_training_split_in_their_key(tiny_ctx):
    """A test-only evaluation, a sweep without fine-tuning and one-shot OMP read no training image; fine-tuning,
    a calibrating method (Wanda), the Essential Sparsity protocol and every training kind do."""
    train = f"400@{tiny_ctx.train.digest[:16]}"

    def reads(**params) -> bool:
        data = tiny_ctx.key(**params)["data"]
        assert data.get("train", train) == train
        return "train" in data

    assert not reads(kind="evaluate", limit=100)
    assert not reads(kind="sweep", methods=["omp", "random"], finetune_steps=0, protocol="lotus")
    assert not reads(kind="prune-eval", method="omp+shuffle", sparsity=0.5)
    assert not reads(kind="sensitivity", scope="blocks")
    assert reads(kind="sweep", methods=["omp"], finetune_steps=100, protocol="lotus")
    assert reads(kind="sweep", methods=["omp", "wanda"], finetune_steps=0)
    assert reads(kind="prune-eval", method="sparsegpt", sparsity=0.5)
    assert reads(kind="sweep", methods=["omp"], finetune_steps=0, protocol="essential")
    assert reads(kind="speed-accuracy", method="heads", importance="taylor")
    assert all(reads(kind=k) for k in ("lth", "lth-control", "issp", "finetune", "fidelity", "lottery-train"))


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


def test_the_key_holds_the_precision_policy_and_the_run_id_the_precision_used(tiny_ctx, monkeypatch):
    from lotus_core.results.keys import experiment_config

    monkeypatch.setattr(device, "bf16_available", lambda dev: False)
    assert tiny_ctx.key(kind="evaluate")["precision"] == "auto"  # bf16 where fast: asked (the default)
    assert tiny_ctx.key(kind="evaluate", bf16=False)["precision"] == "fp32"
    assert tiny_ctx.computed()["precision"] == "fp32" == tiny_ctx.computed(bf16=False)["precision"]
    no_bf16 = experiment_config(tiny_ctx, "evaluate", {"limit": 100})
    monkeypatch.setattr(device, "bf16_available", lambda dev: True)
    assert tiny_ctx.key(kind="evaluate")["precision"] == "auto"
    assert tiny_ctx.computed()["precision"] == "bf16" and tiny_ctx.computed(bf16=False)["precision"] == "fp32"
    bf16 = experiment_config(tiny_ctx, "evaluate", {"limit": 100})
    assert {k: v for k, v in no_bf16.items() if k != "computed"} == {k: v for k, v in bf16.items() if k != "computed"}
    assert config_id(no_bf16) != config_id(bf16)  # one key, two runs: both kept


def test_lotus_threads_sets_the_compute_threads_and_the_key(monkeypatch, tmp_path):
    """The CLI, the worker and the dashboard all open their Context with open_context, which applies
    $LOTUS_THREADS (default 2 on every machine); the run records the count used, the key does not."""
    monkeypatch.setenv("LOTUS_THREADS", "2")
    try:
        ctx = open_context(db=tmp_path / "r.db")
        assert torch.get_num_threads() == 2 and ctx.computed()["threads"] == 2 and "threads" not in ctx.key()
        monkeypatch.delenv("LOTUS_THREADS")
        assert device.compute_threads() == device.DEFAULT_THREADS == 2
    finally:
        torch.set_num_threads(1)


def test_a_result_computed_elsewhere_is_served_labelled_and_recomputing_here_keeps_both(tiny_ctx, monkeypatch):
    """Run on a bf16 machine at 1 thread, then asked on an fp32 machine at 3 threads: the stored result is served
    (nothing computed) with a label naming what differs; `here=True` computes it here under its own id, and from
    then on this machine gets its own run silently while the first stays stored."""
    import itertools

    from lotus_core.results.runs import provenance_label, resolve, run_experiment

    calls = itertools.count()

    def compute(ctx, config, run):
        next(calls)
        return {"accuracy": 0.5 if ctx.computed()["precision"] == "bf16" else 0.75}

    monkeypatch.setattr(device, "bf16_available", lambda dev: True)
    first = run_experiment(tiny_ctx, "probe", {"limit": 10}, compute)
    assert provenance_label(tiny_ctx, first["run_id"]).startswith("computed in bf16 on cpu (")
    monkeypatch.setattr(device, "bf16_available", lambda dev: False)
    torch.set_num_threads(3)
    try:
        served = run_experiment(tiny_ctx, "probe", {"limit": 10}, compute)
        assert served == first and next(calls) == 1  # one computation so far
        assert provenance_label(tiny_ctx, first["run_id"]).startswith(
            "computed elsewhere (in bf16 (here: fp32); on 1 thread (here: 3)): computed in bf16 on cpu (")
        mine = run_experiment(tiny_ctx, "probe", {"limit": 10}, compute, here=True)
        assert mine["accuracy"] == 0.75 and mine["run_id"] != first["run_id"] and next(calls) == 3
        assert resolve(tiny_ctx, "probe", {"limit": 10})["id"] == mine["run_id"]
        assert provenance_label(tiny_ctx, mine["run_id"]).startswith("computed in fp32 on cpu (")
        prov = tiny_ctx.store.get_run(mine["run_id"])["provenance"]
        assert prov["threads"] == 3 and prov["precision"] == "fp32" and prov["wall_s"] >= 0 and prov["torch"]
        assert len(prov["load_before"]) == len(prov["load_after"]) == 3
        assert tiny_ctx.store.get_run(first["run_id"])["summary"]["accuracy"] == 0.5  # both kept
    finally:
        torch.set_num_threads(1)
