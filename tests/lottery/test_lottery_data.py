"""Training on data lottery tickets against full images: stored per epoch, resumable, exact summaries."""
import dataclasses

import pytest
import torch
from safetensors.torch import load

from lotus_core import jobs
from lotus_core.core.errors import LotusError
from lotus_core.lottery.common import load_state_bytes
from lotus_core.patches.ticket_training import (LotteryTrainConfig, epoch_frame, run_lottery_train, summarise,
                                     training_pool)
from lotus_core.patches import score_images
from lotus_core.patches.select import fill_value, select_patches
from lotus_core.results.registry import experiments
from lotus_core.results.runs import Cancelled, run_experiment, run_id_for
from tests.conftest import make_tiny_vit

CFG = LotteryTrainConfig(scorer="cls", drop=0.25, epochs=2, steps_per_epoch=4, fraction=0.25, lr=3e-3,
                         weight_decay=0.0, batch_size=16, limit=50, start="scratch")


def test_every_epoch_of_both_arms_is_stored_with_the_keep_masks(tiny_ctx):
    summary = run_experiment(tiny_ctx, "lottery-train", CFG, run_lottery_train)
    store, run_id = tiny_ctx.store, summary["run_id"]
    points = store.points(run_id)
    assert sorted(points) == ["full-epoch-1", "full-epoch-2", "keep-masks", "lottery-epoch-1", "lottery-epoch-2"]
    assert [points[f"lottery-epoch-{e}"]["steps"] for e in (1, 2)] == [4, 4]
    # the masks: the base model's cls scores of the 100-image pool, 4 of 16 patches dropped per image
    stored = load(store.get_blob(run_id, "keep.safetensors"))
    pool = training_pool(tiny_ctx, CFG)
    assert len(pool) == 100 and torch.equal(stored["pool"], pool)
    scores = score_images(tiny_ctx.model, tiny_ctx.train.images[pool], tiny_ctx.data_config, "cls",
                          fill=fill_value(tiny_ctx.train, tiny_ctx.data_config), ids=pool)
    assert torch.equal(stored["keep"], select_patches(scores, 0.25))
    assert stored["keep"].sum(dim=1).tolist() == [12] * 100
    assert points["keep-masks"]["kept"] == 12 and summary["patches_dropped"] == 4
    # each epoch's weights are a blob that reproduces the stored accuracy
    frame = epoch_frame(tiny_ctx, run_id)
    assert list(frame[["arm", "epoch"]].itertuples(index=False, name=None)) == [
        ("full", 1), ("full", 2), ("lottery", 1), ("lottery", 2)]
    model = load_state_bytes(tiny_ctx.copy_model(), store.get_blob(run_id, "lottery-epoch-2.safetensors"))
    assert tiny_ctx.evaluate(model, limit=50).accuracy == points["lottery-epoch-2"]["accuracy"]
    assert summary["lottery"]["accuracy"] == frame[frame["arm"] == "lottery"]["accuracy"].tolist()
    assert summary["full"]["train_time_s"] == pytest.approx(frame[frame["arm"] == "full"]["train_s"].sum())
    # the two arms saw different inputs from the same start
    full = load(store.get_blob(run_id, "full-epoch-1.safetensors"))
    lottery = load(store.get_blob(run_id, "lottery-epoch-1.safetensors"))
    assert not torch.equal(full["head.weight"], lottery["head.weight"])
    init = load(store.get_blob(run_id, "init.safetensors"))
    fresh = make_tiny_vit(CFG.seed).state_dict()  # scratch: the architecture initialised under the config's seed
    assert all(torch.equal(init[k], v) for k, v in fresh.items())


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_ctx, tmp_path):
    whole = run_experiment(tiny_ctx, "lottery-train", CFG, run_lottery_train)
    other = dataclasses.replace(tiny_ctx, store=type(tiny_ctx.store)(tmp_path / "second.db"))
    run_id = run_id_for(other, "lottery-train", CFG)

    def stop_after_first_epoch(progress):
        if progress.get("epoch") == 1 and progress.get("arm") == "full":
            other.store.set_status(run_id, "cancelling")

    with pytest.raises(Cancelled):
        run_experiment(other, "lottery-train", CFG, run_lottery_train, on_progress=stop_after_first_epoch)
    assert sorted(k for k in other.store.points(run_id) if "epoch" in k) == ["full-epoch-1", "lottery-epoch-1"]
    resumed = run_experiment(other, "lottery-train", CFG, run_lottery_train)
    for arm in ("lottery", "full"):
        assert resumed[arm]["accuracy"] == whole[arm]["accuracy"]
        a = load(other.store.get_blob(run_id, f"{arm}-epoch-2.safetensors"))
        b = load(tiny_ctx.store.get_blob(whole["run_id"], f"{arm}-epoch-2.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrained_start_is_the_base_model(tiny_ctx):
    cfg = dataclasses.replace(CFG, start="pretrained", epochs=1, steps_per_epoch=1)
    summary = run_experiment(tiny_ctx, "lottery-train", cfg, run_lottery_train)
    init = load(tiny_ctx.store.get_blob(summary["run_id"], "init.safetensors"))
    assert all(torch.equal(init[k], v) for k, v in tiny_ctx.model.state_dict().items())


def test_summary_counts_epochs_to_within_one_point_of_the_best_full_accuracy():
    cfg = LotteryTrainConfig(epochs=4, drop=0.1)
    accs = {"full": [0.50, 0.80, 0.90, 0.85], "lottery": [0.70, 0.895, 0.88, 0.91]}
    points = {f"{arm}-epoch-{e}": {"accuracy": a, "train_s": 2.0} for arm in accs for e, a in enumerate(accs[arm], 1)}
    out = summarise(cfg, points, images=100, patches=49, steps=10)
    assert out["best_full_accuracy"] == 0.90 and out["patches_dropped"] == 5
    assert out["full"]["epochs_to_within_1pt"] == 3 and out["lottery"]["epochs_to_within_1pt"] == 2
    assert out["full"]["train_time_s"] == 8.0 and out["lottery"]["best_accuracy"] == 0.91
    never = summarise(cfg, {**points, **{f"lottery-epoch-{e}": {"accuracy": 0.1, "train_s": 1.0} for e in range(1, 5)}},
                      100, 49, 10)
    assert never["lottery"]["epochs_to_within_1pt"] is None


def test_the_job_kind_runs_the_same_experiment(tiny_ctx, monkeypatch):
    assert experiments()["lottery-train"].fn is run_lottery_train
    cfg = dataclasses.replace(CFG, epochs=1, steps_per_epoch=1)
    # LOTUS_JOBS_IMMEDIATE (conftest): the job runs on submit, in this process, against the tiny model
    monkeypatch.setattr(jobs, "_context", lambda spec_json: tiny_ctx)
    run_id = jobs.submit(jobs.context_spec(tiny_ctx, model="tiny"), "lottery-train", cfg, tiny_ctx)
    run = tiny_ctx.store.get_run(run_id)
    assert run["status"] == "done" and run["summary"]["epochs"] == 1
    assert run["progress"]["done"] == run["progress"]["planned"] == 2


@pytest.mark.parametrize("change, message", [
    ({"drop": 1.0}, r"drop ratio 1.0 is outside \[0, 1\)"),
    ({"scorer": "magic"}, "unknown patch scorer 'magic'"),
    ({"start": "midway"}, "start 'midway' is not one of scratch, pretrained"),
    ({"fraction": 0.0}, r"training fraction 0.0 is outside \(0, 1\]"),
])
def test_bad_configs_are_refused_before_any_work(tiny_ctx, change, message):
    with pytest.raises(LotusError, match=message):
        run_experiment(tiny_ctx, "lottery-train", dataclasses.replace(CFG, **change), run_lottery_train)


def test_both_arms_are_also_tested_on_the_test_images_own_tickets(tiny_ctx):
    from lotus_core.data.images import subset_indices, to_model_input
    from lotus_core.core.device import autocast, default_device
    from lotus_core.patches import patch_grid
    from lotus_core.patches.select import mask_pixels

    summary = run_experiment(tiny_ctx, "lottery-train", CFG, run_lottery_train)
    store, run_id = tiny_ctx.store, summary["run_id"]
    idx = subset_indices(len(tiny_ctx.test), CFG.limit, 0)  # the fixed subset ctx.evaluate uses
    fill = fill_value(tiny_ctx.train, tiny_ctx.data_config)
    scores = score_images(tiny_ctx.model, tiny_ctx.test.images[idx], tiny_ctx.data_config, "cls", fill=fill, ids=idx)
    keep = select_patches(scores, CFG.drop)
    stored = load(store.get_blob(run_id, "test-keep.safetensors"))
    assert torch.equal(stored["pool"], idx) and torch.equal(stored["keep"], keep)
    grid = patch_grid(tiny_ctx.model, tiny_ctx.data_config["input_size"][1:])
    for arm in ("lottery", "full"):
        model = load_state_bytes(tiny_ctx.copy_model(), store.get_blob(run_id, f"{arm}-epoch-2.safetensors"))
        x = mask_pixels(to_model_input(tiny_ctx.test.images[idx], tiny_ctx.data_config), keep, grid, fill)
        with torch.inference_mode(), autocast(default_device()):  # the evaluation's precision
            expected = int((model(x).argmax(-1) == tiny_ctx.test.labels[idx]).sum()) / CFG.limit
        assert summary[arm]["final_ticket_accuracy"] == expected
        assert epoch_frame(tiny_ctx, run_id).query("arm == @arm")["ticket_accuracy"].tolist() == \
            summary[arm]["ticket_accuracy"]


def test_tokens_apply_trains_the_lottery_arm_on_the_kept_tokens_only(tiny_ctx, monkeypatch):
    import lotus_core.patches.ticket_training as lottery_data

    calls = []
    real = lottery_data.drop_tokens

    def spy(model, x, keep):
        calls.append((x.shape[0], keep.sum(dim=1).unique().tolist()))
        return real(model, x, keep)

    monkeypatch.setattr(lottery_data, "drop_tokens", spy)
    cfg = dataclasses.replace(CFG, apply="tokens")
    summary = run_experiment(tiny_ctx, "lottery-train", cfg, run_lottery_train)
    # training: 2 epochs x 4 steps of 16 images, lottery arm only; tickets test: 50 images per arm and epoch
    assert sorted(calls) == [(16, [12])] * 8 + [(50, [12])] * 4
    assert len(summary["lottery"]["ticket_accuracy"]) == 2
    with pytest.raises(LotusError, match="apply 'both' is not one of pixels, tokens"):
        run_experiment(tiny_ctx, "lottery-train", dataclasses.replace(CFG, apply="both"), run_lottery_train)
