"""Tickets found by training: RigL (and its N:M variant), edge-popup supermasks, LoTA sparse fine-tuning."""
import copy

import pytest
import torch

from lotus_core.core.errors import LotusError
from lotus_core.lottery.lota import LoTAConfig, run_lota
from lotus_core.lottery.rigl import RigLConfig, drop_grow, drop_grow_nm, run_rigl, update_fraction
from lotus_core.lottery.supermask import SupermaskConfig, attach, detach, run_supermask
from lotus_core.pruning import Mask, prune, scoped_parameters
from lotus_core.results.runs import Run, run_experiment, run_id_for
from lotus_core.training.train import TrainConfig, train
from tests.conftest import make_tiny_imageset

TINY = dict(steps=6, batch_size=16, limit=50)


def test_drop_grow_drops_the_smallest_weights_and_grows_the_largest_gradients():
    w = torch.tensor([[0.5, 0.1, 0.0, 0.9], [0.2, 0.0, 0.3, 0.0]])
    g = torch.tensor([[0.0, 0.0, 5.0, 0.0], [0.0, 1.0, 0.0, 7.0]])
    keep = Mask({"w": torch.tensor([[True, True, False, True], [True, False, True, False]])})
    new = drop_grow({"w": w}, {"w": g}, keep, 0.5)["w"]  # 5 active: round(2.5) = 2 swapped
    assert new.tolist() == [[True, False, True, True], [False, False, True, True]]
    assert int(new.sum()) == int(keep["w"].sum())
    nm = drop_grow_nm({"w": w}, {"w": g}, keep, 1.0, m=4)["w"]  # every group of 4 swaps its worst for its best
    assert nm.tolist() == [[True, False, True, True], [False, False, True, True]]


def test_update_fraction_is_cosine_decayed_and_stops_at_end():
    cfg = RigLConfig(steps=100, update_every=10, drop_fraction=0.3, end=0.75)
    assert update_fraction(0, cfg) == 0.0 and update_fraction(5, cfg) == 0.0 and update_fraction(80, cfg) == 0.0
    assert update_fraction(10, cfg) == pytest.approx(0.15 * (1 + torch.cos(torch.tensor(torch.pi * 10 / 75)).item()))
    assert update_fraction(10, cfg) > update_fraction(40, cfg) > update_fraction(70, cfg) > 0


@pytest.mark.parametrize("extra", [dict(target=0.6), dict(init="random", target=0.6), dict(n=2, m=4)])
def test_rigl_keeps_the_sparsity_exact_at_every_update(tiny_ctx, extra):
    cfg = RigLConfig(update_every=2, end=1.0, drop_fraction=0.5, **TINY, **extra)
    out = run_experiment(tiny_ctx, "rigl", cfg, run_rigl)
    run = Run(tiny_ctx.store, run_id_for(tiny_ctx, "rigl", cfg), "rigl")
    final = run.get("final")
    assert final["updates"] == 2 and final["update_sparsities"] == [final["start_sparsity"]] * 2
    assert final["sparsity"] == final["start_sparsity"] and final["rewired"] > 0
    mask = Mask.from_bytes(run.blob("mask.safetensors"))
    if cfg.m:
        assert all(torch.all(t.reshape(-1, 4).sum(dim=1) == 2) for t in mask.values())
    else:
        start = prune(tiny_ctx.model, "omp", 0.6)
        assert {n: int(t.sum()) for n, t in mask.items()} == {n: int(t.sum()) for n, t in start.items()}
    assert out["accuracy"] == final["accuracy"]


def test_edge_popup_at_full_density_is_the_dense_model(tiny_ctx):
    model = copy.deepcopy(tiny_ctx.model)
    names = list(scoped_parameters(model))
    popups = attach(model, names, 1.0)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), tiny_ctx.model(x))
    mask = detach(model, popups)
    base = tiny_ctx.model.state_dict()
    assert mask.sparsity == 0.0 and set(model.state_dict()) == set(base)
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())  # the frozen weights come back
    out = run_experiment(tiny_ctx, "supermask", SupermaskConfig(density=1.0, **TINY), run_supermask)
    assert out["accuracy"] == tiny_ctx.evaluate(limit=50).accuracy == out["frozen_dense_accuracy"]


def test_edge_popup_trains_only_scores_and_keeps_k_per_layer(tiny_ctx):
    cfg = SupermaskConfig(density=0.3, init="reinit", **TINY)
    out = run_experiment(tiny_ctx, "supermask", cfg, run_supermask)
    mask = Mask.from_bytes(Run(tiny_ctx.store, run_id_for(tiny_ctx, "supermask", cfg), "supermask").blob("mask.safetensors"))
    assert all(int(t.sum()) == t.numel() - round(0.7 * t.numel()) for t in mask.values())
    assert out["sparsity"] == mask.sparsity
    with pytest.raises(LotusError, match="outside \\(0, 1\\]"):
        attach(copy.deepcopy(tiny_ctx.model), ["blocks.0.mlp.fc1.weight"], 0.0)


def test_sparse_fine_tuning_moves_only_the_weights_inside_the_mask(tiny_vit):
    before = copy.deepcopy(tiny_vit.state_dict())
    mask = prune(tiny_vit, "omp", 0.8)
    for name, p in tiny_vit.named_parameters():
        p.requires_grad_(name in mask)
    train(tiny_vit, make_tiny_imageset(64, seed=1, split="train"), TrainConfig(steps=3, batch_size=16, lr=1e-2,
          weight_decay=0.0), {"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,)}, trainable=mask)
    after = tiny_vit.state_dict()
    for name, keep in mask.items():
        assert torch.equal(after[name][~keep], before[name][~keep]) and not torch.equal(after[name][keep], before[name][keep])
    assert all(torch.equal(after[k], before[k]) for k in before if k not in mask)
    with pytest.raises(LotusError, match="weight_decay=0"):
        train(tiny_vit, make_tiny_imageset(16), TrainConfig(steps=1, batch_size=8), {"input_size": (1, 28, 28),
              "mean": (0.5,), "std": (0.5,)}, trainable=mask)


def test_lota_compares_with_dense_fine_tuning_at_the_same_steps(tiny_ctx):
    out = run_experiment(tiny_ctx, "lota", LoTAConfig(sparsity=0.9, calibrate_steps=2, **TINY), run_lota)
    assert set(out) >= {"lota_accuracy", "dense_accuracy"} and out["trained_fraction"] == pytest.approx(0.1, abs=1e-3)
    assert 0 <= out["lota_accuracy"] <= 1 and out["steps"] == 6


def test_cli_rigl_supermask_lota_on_the_default_model(capsys, tmp_path):
    import json

    from tests.commands.test_core import run_cli

    db = str(tmp_path / "r.db")
    small = ["--steps", "2", "--batch-size", "8", "--limit", "50", "--json", "--db", db]
    code, out, err = run_cli(capsys, "rigl", "--target", "0.7", "--update-every", "1", "--end", "1", *small)
    res = json.loads(out)
    assert code == 0 and res["updates"] == 1 and res["sparsity"] == res["start_sparsity"] == round(0.7 * 552960) / 552960
    code, out, err = run_cli(capsys, "supermask", "--density", "1.0", *small)
    res = json.loads(out)
    assert code == 0 and res["sparsity"] == 0.0 and res["accuracy"] == res["frozen_dense_accuracy"]
    code, out, err = run_cli(capsys, "supermask", "--density", "1.5", *small)
    assert code == 2 and "supermask density 1.5 is outside (0, 1]" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "lota", "--sparsity", "1.0", *small)
    assert code == 2 and "1.0 is outside [0, 1)" in err


def test_core_ticket_is_the_intersection_with_its_chance_level(tiny_ctx):
    from lotus_core.lottery.core_ticket import CoreTicketConfig, chance_kept, intersection, partition, run_core_ticket

    parts = partition(10, 3, seed=0)
    assert sorted(torch.cat(parts).tolist()) == list(range(10)) and [len(p) for p in parts] == [4, 3, 3]
    a = Mask({"w": torch.tensor([True, True, False, False])})
    b = Mask({"w": torch.tensor([True, False, True, False])})
    assert intersection([a, b])["w"].tolist() == [True, False, False, False] and chance_kept([a, b]) == 0.25
    cfg = CoreTicketConfig(partitions=2, target=0.5, **TINY)
    out = run_experiment(tiny_ctx, "core-ticket", cfg, run_core_ticket)
    run = Run(tiny_ctx.store, run_id_for(tiny_ctx, "core-ticket", cfg), "core-ticket")
    masks = [Mask.from_bytes(run.blob(f"mask-part-{i}.safetensors")) for i in range(2)]
    masks = [Mask({n: m[n] for n in masks[0]}) for m in masks]
    core = intersection(masks)
    assert out["core_kept"] == core.density and out["core_kept"] <= 0.5 and out["chance_kept"] == pytest.approx(chance_kept(masks))
    assert abs(out["chance_kept"] - 0.25) < 0.01  # two independent masks at 50%: a quarter, up to per-layer spread
    assert run.get("random")["sparsity"] == run.get("core")["sparsity"] == core.sparsity
    with pytest.raises(LotusError, match="between 2 and"):
        partition(10, 1)


def test_a_transferred_ticket_is_trained_beside_the_targets_own_a_random_one_and_dense(tiny_ctx, monkeypatch):
    from lotus_core.lottery import ticket_transfer as tt
    from lotus_core.lottery.core_ticket import chance_kept, intersection
    from lotus_core.pruning.controls import shuffled

    cfg = tt.TicketTransferConfig(source="fashion-mnist-0to4", target=0.5, **TINY)
    out = run_experiment(tiny_ctx, "ticket-transfer", cfg, tt.run_ticket_transfer)
    run = Run(tiny_ctx.store, run_id_for(tiny_ctx, "ticket-transfer", cfg), "ticket-transfer")
    assert list(tiny_ctx.store.points(run.id)) == ["source", "target", "random", "dense"]
    names = list(scoped_parameters(tiny_ctx.model, "blocks"))
    source, target = (Mask({n: Mask.from_bytes(run.blob(f"mask-{w}.safetensors"))[n] for n in names})
                      for w in ("source", "target"))
    assert not all(torch.equal(source[n], target[n]) for n in names)  # found on 5 Fashion-MNIST classes, not "tiny"
    random = shuffled(source, cfg.seed)  # the control: the source ticket's per-layer budget, positions shuffled
    assert all(int(random[n].sum()) == int(source[n].sum()) for n in names)
    assert [run.get(k)["sparsity"] for k in ("source", "target", "random", "dense")] == [
        source.sparsity, target.sparsity, source.sparsity, 0.0]
    assert source.sparsity == pytest.approx(0.5, abs=1e-3)
    assert out["overlap_kept"] == intersection([source, target]).density
    assert out["chance_kept"] == pytest.approx(chance_kept([source, target]))
    assert out["source_accuracy"] == run.get("source")["accuracy"] and out["source"] == "fashion-mnist-0to4"
    # a stopped run resumes: the masks are not found again and only the missing tickets are trained
    with tiny_ctx.store._connect() as db:
        db.execute("DELETE FROM points WHERE run_id = ? AND key IN ('random', 'dense')", (run.id,))
    tiny_ctx.store.set_status(run.id, "interrupted")
    trained = []
    real = tt.finetune
    monkeypatch.setattr(tt, "finetune", lambda *a, **k: trained.append(1) or real(*a, **k))
    monkeypatch.setattr(tt, "found_mask", lambda *a, **k: pytest.fail("a stored mask was found again"))
    again = run_experiment(tiny_ctx, "ticket-transfer", cfg, tt.run_ticket_transfer)
    assert len(trained) == 2 and again["random_accuracy"] == out["random_accuracy"]
    import dataclasses

    same = dataclasses.replace(tiny_ctx, dataset="fashion-mnist-0to4")
    with pytest.raises(LotusError, match="^the source dataset is the run's own"):
        tt.run_ticket_transfer(same, cfg, run)
    with pytest.raises(LotusError, match="^unknown source dataset 'nope'"):
        tt.TicketTransferConfig(source="nope")


def test_cli_ticket_transfer_runs_on_the_transfer_demo_whose_head_knows_other_classes(capsys, tmp_path):
    import json

    from tests.commands.test_core import run_cli

    code, out, err = run_cli(capsys, "ticket-transfer", "--model", "data/transfer_vit.safetensors", "--dataset",
                             "fashion-mnist-5to9", "--source", "fashion-mnist-0to4", "--steps", "1", "--batch-size", "8",
                             "--limit", "20", "--db", str(tmp_path / "t.db"), "--json")
    assert code == 0, err  # every ticket is fine-tuned, head and all: an untrained head is not refused
    res = json.loads(out)
    assert res["source"] == "fashion-mnist-0to4" and res["kept"] == 0.5 and res["dense_accuracy"] is not None
    code, _, err = run_cli(capsys, "ticket-transfer", "--source", "no-such-set", "--db", str(tmp_path / "t.db"))
    assert code == 2 and err.count("\n") == 1 and "unknown source dataset 'no-such-set'" in err


def test_a_supermask_and_a_rigl_run_are_one_point_each_in_the_soup_comparison_and_its_costs(tiny_ctx):
    from lotus_core.views.catalog import accuracy_comparison, run_costs

    sm = run_experiment(tiny_ctx, "supermask", SupermaskConfig(density=0.5, **TINY), run_supermask)
    rg = run_experiment(tiny_ctx, "rigl", RigLConfig(target=0.5, update_every=2, **TINY), run_rigl)
    table = accuracy_comparison(tiny_ctx, [sm["run_id"], rg["run_id"]], limit=50, sparsities=(0.5,))
    mask_row = table[table["series"] == f"supermask {sm['run_id'][:6]} (a mask alone, 6 steps)"]
    rigl_row = table[table["series"] == f"RigL {rg['run_id'][:6]} (6 steps)"]
    assert mask_row[["sparsity", "accuracy"]].values.tolist() == [[sm["sparsity"], sm["accuracy"]]]
    assert rigl_row[["sparsity", "accuracy"]].values.tolist() == [[rg["sparsity"], rg["accuracy"]]]
    costs = run_costs(tiny_ctx, [sm["run_id"], rg["run_id"]])
    assert costs["kind"].tolist() == ["supermask", "rigl"] and costs["training steps"].tolist() == [6, 6]
    assert costs["final accuracy"].tolist() == [sm["accuracy"], rg["accuracy"]] and costs["rounds"].isna().all()
