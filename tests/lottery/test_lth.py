"""Lottery tickets (IMP with rewinding) and their controls, on the tiny seeded ViT."""
import copy
import dataclasses
import json

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from lotus_core.context import open_context
from lotus_core.core.errors import LotusError
from lotus_core.lottery.common import prune_counts, prune_remaining, round_masks
from lotus_core.lottery.controls import ControlConfig, control_model, run_control
from lotus_core.lottery.lth import (REWIND_BLOB, LTHConfig, fine_tuned_ticket, lth_counts, rewind_model,
                                    run_lth)
from lotus_core.pruning import Mask, prune
from lotus_core.pruning.scope import scoped_parameters
from lotus_core.results.runs import Run, run_experiment, run_id_for
from lotus_core.results.store import Store
from lotus_core.training.train import TrainConfig, train
from tests.commands.test_core import run_cli

CFG = LTHConfig(target=0.6, prune_fraction=0.2, steps=6, lr=3e-3, batch_size=32, limit=50)


def test_counts_compound_as_iterative_torch_pruning_and_clip_onto_the_target():
    assert prune_counts(1000, 0.6, 0.2) == [200, 360, 488, 590, 600]  # 590 + round(0.2 * 410) = 672 > 600
    # round(2.5) = 2 and round(1.5) = 2 (half to even, as Python and torch round); a round never prunes 0
    assert prune_counts(10, 0.9, 0.25) == [2, 4, 6, 7, 8, 9]
    for total, fraction in ((1000, 0.2), (10, 0.25), (4099, 0.15)):
        w = torch.nn.Linear(total, 1, bias=False)
        zeros = []
        for _ in range(4):  # torch.nn.utils.prune applied round after round prunes `fraction` of what is left
            torch_prune.l1_unstructured(w, "weight", amount=fraction)
            zeros.append(int((w.weight_mask == 0).sum()))
        assert prune_counts(total, 0.99, fraction)[:4] == zeros
    with pytest.raises(LotusError, match="pruning fraction per round 1.5 is outside"):
        prune_counts(10, 0.5, 1.5)


def test_imp_step_equals_torch_global_pruning_on_top_of_the_previous_mask(tiny_vit):
    keep = prune(tiny_vit, "random", 0.3, seed=1)
    extra = round(0.2 * (keep.numel() - keep.num_pruned()))
    ours = prune_remaining(tiny_vit, keep, keep.num_pruned() + extra)
    ref = copy.deepcopy(tiny_vit)
    modules = dict(ref.named_modules())
    params = [(modules[n[:-len(".weight")]], "weight") for n in keep]
    for (module, _), n in zip(params, keep):
        torch_prune.custom_from_mask(module, "weight", keep[n])
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=0.2)
    for (module, _), n in zip(params, keep):
        assert torch.equal(module.weight_mask.bool(), ours[n]), n
    assert all(torch.all(ours[n] <= keep[n]) for n in keep)  # nothing pruned comes back


def test_round_masks_have_exact_compounded_sizes_and_are_nested(tiny_ctx):
    summary = run_experiment(tiny_ctx, "lth", CFG, run_lth)
    masks = round_masks(tiny_ctx.store, summary["run_id"])
    total = next(iter(masks.values())).numel()
    counts = prune_counts(total, 0.6, 0.2)
    assert counts == lth_counts(tiny_ctx, CFG) and len(counts) == 5
    assert list(masks) == [1, 2, 3, 4, 5]
    assert [m.num_pruned() for m in masks.values()] == counts
    assert masks[5].num_pruned() == round(0.6 * total)
    for r in range(1, 5):
        assert all(torch.all(masks[r + 1][n] <= masks[r][n]) for n in masks[r])
    points = tiny_ctx.store.points(summary["run_id"])
    assert [p["round"] for p in points.values()] == [0, 1, 2, 3, 4, 5]
    assert [p["num_pruned"] for p in points.values()] == [0, *counts]
    assert all(p["steps"] == 6 and p["n"] == 50 for p in points.values())
    assert summary["train_steps"] == 6 * 6 and summary["final_sparsity"] == masks[5].sparsity
    assert summary["final_accuracy"] == points["round-5"]["accuracy"]
    assert summary["dense_finetuned_accuracy"] == points["round-0"]["accuracy"]


def test_rewinding_restores_the_pretrained_weights_and_pruned_weights_stay_zero(tiny_ctx, monkeypatch):
    import lotus_core.lottery.lth as lth_mod

    mask = prune(tiny_ctx.model, "omp", 0.5)
    base = dict(tiny_ctx.model.named_parameters())
    started = []
    real = lth_mod.finetune
    monkeypatch.setattr(lth_mod, "finetune", lambda model, *a, **k: started.append(copy.deepcopy(model)) or
                        real(model, *a, **k))
    steps = []
    trained, kept, losses = fine_tuned_ticket(tiny_ctx, CFG, 1, mask, None, on_progress=lambda p: steps.append(p.step))
    for n, p in started[0].named_parameters():  # the ticket before its fine-tune: pre-trained weights * mask
        assert torch.equal(p, base[n] * mask[n] if n in mask else base[n]), n
    for n, p in scoped_parameters(trained).items():
        assert torch.all(p[~mask[n]] == 0), n  # exactly zero after fine-tuning
        assert not torch.equal(p[mask[n]], base[n][mask[n]]), n  # the survivors did train
    assert kept is None and steps[-1] == 6  # no rewinding point to keep; progress reported to the last step
    assert len(losses) == 6 and all(x > 0 for x in losses)  # the loss of every step, for the training chart


def test_late_rewinding_restores_step_k_of_the_same_dense_run(tiny_ctx):
    """Frankle et al. (2020): ``step:K`` rewinds to the weights after step K of round 0's own fine-tune (its
    6-step cosine schedule), not to a separate K-step run with a schedule of its own."""
    late = dataclasses.replace(CFG, rewind="step:3")
    run = Run(tiny_ctx.store, tiny_ctx.store.start_run("lth", {"t": 2}), "lth")
    with pytest.raises(LotusError, match="run its round 0 first"):
        rewind_model(tiny_ctx, late, run)
    dense = Mask.ones(scoped_parameters(tiny_ctx.model, late.scope))
    round0, kept, _ = fine_tuned_ticket(tiny_ctx, late, 0, dense, None)
    run.blob(REWIND_BLOB, kept)  # what run_lth stores after round 0
    with pytest.raises(LotusError, match="run its round 0 first"):  # a later round needs those weights
        fine_tuned_ticket(tiny_ctx, late, 1, dense, None)
    config = TrainConfig(steps=6, batch_size=32, lr=3e-3, weight_decay=0.0, seed=0)
    by_hand, steps = tiny_ctx.copy_model(), []
    train(by_hand, tiny_ctx.train, config, tiny_ctx.data_config, mask=dense,
          should_stop=lambda: len(steps) == 3, on_step=lambda step, _: steps.append(step))
    separate = tiny_ctx.copy_model()  # the old, wrong rewinding point: a 3-step run of its own
    train(separate, tiny_ctx.train, dataclasses.replace(config, steps=3), tiny_ctx.data_config)
    for model in (rewind_model(tiny_ctx, late, run), rewind_model(tiny_ctx, late, run)):
        for (n, a), (_, b) in zip(model.state_dict().items(), by_hand.state_dict().items()):
            assert torch.equal(a, b), n
        assert not torch.equal(model.state_dict()["blocks.0.attn.qkv.weight"],
                               separate.state_dict()["blocks.0.attn.qkv.weight"])
        assert not torch.equal(model.state_dict()["blocks.0.attn.qkv.weight"],
                               round0.state_dict()["blocks.0.attn.qkv.weight"])  # step 3, not step 6
    with pytest.raises(LotusError, match="past round 0's 6 fine-tuning steps"):
        lth_counts(tiny_ctx, dataclasses.replace(CFG, rewind="step:7"))
    with pytest.raises(LotusError, match="rewind 'epoch:2' is not 'pretrained' or 'step:K'"):
        lth_counts(tiny_ctx, dataclasses.replace(CFG, rewind="epoch:2"))


def test_run_stopped_mid_round_resumes_and_equals_an_uninterrupted_one(tiny_ctx, tmp_path):
    full = run_experiment(tiny_ctx, "lth", CFG, run_lth)

    def stop_in_round_3(fields):
        if fields.get("round") == 3 and fields.get("step") == 3:
            raise KeyboardInterrupt

    other = dataclasses.replace(tiny_ctx, store=Store(tmp_path / "other.db"))  # same model, separate store
    with pytest.raises(KeyboardInterrupt):
        run_experiment(other, "lth", CFG, run_lth, on_progress=stop_in_round_3)
    run_id = run_id_for(other, "lth", CFG)
    assert list(other.store.points(run_id)) == ["round-0", "round-1", "round-2"]
    assert other.store.get_run(run_id)["status"] == "interrupted"
    resumed = run_experiment(other, "lth", CFG, run_lth)
    assert_same_run(tiny_ctx.store, full["run_id"], other.store, resumed["run_id"])


def assert_same_run(store_a, id_a, store_b, id_b):
    """Two stored ticket runs have equal round masks and equal points (wall times aside)."""
    a, b = round_masks(store_a, id_a), round_masks(store_b, id_b)
    assert list(a) == list(b) and all(torch.equal(a[r][n], b[r][n]) for r in a for n in a[r])
    strip = lambda points: [{k: v for k, v in p.items() if k != "elapsed_s"} for p in points.values()]  # noqa: E731
    assert strip(store_a.points(id_a)) == strip(store_b.points(id_b))


def test_shuffle_control_keeps_every_layer_budget_and_moves_the_kept_weights(tiny_ctx):
    run_experiment(tiny_ctx, "lth", CFG, run_lth)
    ticket_mask = round_masks(tiny_ctx.store, run_id_for(tiny_ctx, "lth", CFG))[3]
    model, mask = control_model(tiny_ctx, ControlConfig(CFG, 3, "shuffle"))
    assert {n: int(m.sum()) for n, m in mask.items()} == {n: int(m.sum()) for n, m in ticket_mask.items()}
    assert all(not torch.equal(mask[n], ticket_mask[n]) for n in mask)
    base = dict(tiny_ctx.model.named_parameters())
    for n, p in model.named_parameters():
        assert torch.equal(p, base[n] * mask[n] if n in mask else base[n]), n
    out = run_experiment(tiny_ctx, "lth-control", ControlConfig(CFG, 3, "shuffle"), run_control)
    stored = Mask.from_bytes(tiny_ctx.store.get_blob(out["run_id"], "mask.safetensors"))
    assert all(torch.equal(stored[n], mask[n]) for n in mask)
    ticket_point = tiny_ctx.store.get_point(run_id_for(tiny_ctx, "lth", CFG), "round-3")
    assert out["sparsity"] == ticket_mask.sparsity and out["ticket_accuracy"] == ticket_point["accuracy"]
    assert out["steps"] == CFG.steps


def test_reinit_control_keeps_the_mask_and_redraws_only_the_scoped_weights(tiny_ctx):
    run_experiment(tiny_ctx, "lth", CFG, run_lth)
    ticket_mask = round_masks(tiny_ctx.store, run_id_for(tiny_ctx, "lth", CFG))[2]
    model, mask = control_model(tiny_ctx, ControlConfig(CFG, 2, "reinit"))
    assert all(torch.equal(mask[n], ticket_mask[n]) for n in mask)
    base = dict(tiny_ctx.model.named_parameters())
    for n, p in model.named_parameters():
        if n in mask:
            assert torch.all(p[~mask[n]] == 0) and not torch.equal(p[mask[n]], base[n][mask[n]]), n
        else:
            assert torch.equal(p, base[n]), n
    again, _ = control_model(tiny_ctx, ControlConfig(CFG, 2, "reinit"))  # seeded: the same draw
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    with pytest.raises(LotusError, match="round 9 of this LTH run is not stored"):
        control_model(tiny_ctx, ControlConfig(CFG, 9, "reinit"))


def test_cli_lth_writes_the_last_mask_and_reports_every_round(capsys, tmp_path):
    db, out_file = tmp_path / "r.db", tmp_path / "lth.safetensors"
    args = ["--target", "0.36", "--steps", "2", "--batch-size", "16", "--limit", "50", "--db", str(db)]
    code, out, err = run_cli(capsys, "lth", *args, "--mask-out", str(out_file), "--json")
    assert code == 0, err
    res = json.loads(out)
    ctx = open_context(db=db)
    counts = lth_counts(ctx, LTHConfig(target=0.36, steps=2))
    assert [p["num_pruned"] for p in res["points"]] == [0, *counts] and res["rounds"] == 2
    assert Mask.load(out_file).num_pruned() == counts[-1] and res["train_steps"] == 3 * 2
    assert "round=1" in err  # progress on stderr
    code, out, err = run_cli(capsys, "lth-control", *args, "--round", "2", "--kind", "reinit", "--json")
    assert code == 0, err
    control = json.loads(out)
    assert control["control"] == "reinit" and control["ticket_accuracy"] == res["points"][2]["accuracy"]
    code, out, err = run_cli(capsys, "lth", *args, "--rewind", "later")
    assert code == 2 and err.count("\n") == 1 and "rewind 'later' is not 'pretrained' or 'step:K'" in err


def test_cli_lth_with_several_seeds_and_rewinds_stores_one_run_each_and_serves_them(capsys, tmp_path):
    db = str(tmp_path / "s.db")
    args = ("lth", "--target", "0.3", "--prune-fraction", "0.3", "--steps", "2", "--batch-size", "16", "--limit", "30",
            "--seeds", "0,1", "--rewinds", "pretrained,step:1", "--db", db, "--json")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [(r["seed"], r["rewind"]) for r in runs] == [(0, "pretrained"), (1, "pretrained"), (0, "step:1"), (1, "step:1")]
    assert len({r["run_id"] for r in runs}) == 4 and all(len(r["points"]) == r["rounds"] + 1 == 2 for r in runs)
    stored = Store(db).runs(kind="lth")
    assert sorted(stored["id"]) == sorted(r["run_id"] for r in runs) and set(stored["status"]) == {"done"}
    code, again, _ = run_cli(capsys, *args)  # all four served from the store
    assert code == 0 and [r["run_id"] for r in json.loads(again)["runs"]] == [r["run_id"] for r in runs]
    code, _, err = run_cli(capsys, *args, "--mask-out", str(tmp_path / "m.safetensors"))
    assert code == 2 and err.strip() == ("lotus lth: error: --mask-out writes one run's mask: give one seed and one "
                                         "rewinding point, or leave it out")
    code, _, err = run_cli(capsys, "lth", "--rewinds", "pretrained,step:x", "--db", db)
    assert code == 2 and "rewind 'step:x' is not 'pretrained' or 'step:K'" in err and len(err.strip().splitlines()) == 1
    # controls of round 1 of the seed-0 ticket, both kinds and two draws, submitted together
    control = ("lth-control", *args[1:11], "--seed", "0", "--rewind", "pretrained", "--round", "1",
               "--kinds", "reinit,shuffle", "--control-seeds", "0,5", "--db", db, "--json")
    code, out, err = run_cli(capsys, *control)
    assert code == 0, err
    controls = json.loads(out)["runs"]
    assert [(c["kind"], c["control_seed"], c["control"]) for c in controls] == [
        ("reinit", 0, "reinit"), ("reinit", 5, "reinit"), ("shuffle", 0, "shuffle"), ("shuffle", 5, "shuffle")]
    assert {c["ticket_accuracy"] for c in controls} == {runs[0]["points"][1]["accuracy"]}
    assert sorted(Store(db).runs(kind="lth-control")["id"]) == sorted(c["run_id"] for c in controls)
    code, again, _ = run_cli(capsys, *control)  # served from the store
    assert code == 0 and json.loads(again)["runs"] == controls
    code, _, err = run_cli(capsys, *control[:-7], "--kinds", "reinit,swap", "--db", db)
    assert code == 2 and "'reinit,swap': give a comma list of controls (reinit, shuffle)" in err


def test_the_training_trace_holds_every_steps_loss_and_each_rounds_accuracy(tiny_ctx):
    from lotus_core.views.catalog import training_trace

    summary = run_experiment(tiny_ctx, "lth", CFG, run_lth)
    points = tiny_ctx.store.points(summary["run_id"])
    losses, rounds = training_trace(tiny_ctx, summary["run_id"])
    n = summary["rounds"] + 1  # round 0 (the dense fine-tune) and every pruned round
    assert losses["step"].tolist() == list(range(1, CFG.steps * n + 1))
    assert losses["round"].tolist() == [str(r) for r in range(n) for _ in range(CFG.steps)]
    assert losses["loss"].tolist() == [x for r in range(n) for x in points[f"round-{r}"]["losses"]]
    assert rounds["step"].tolist() == [CFG.steps * (r + 1) for r in range(n)]
    assert rounds["accuracy"].tolist() == [points[f"round-{r}"]["accuracy"] for r in range(n)]
