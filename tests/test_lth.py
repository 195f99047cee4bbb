import dataclasses

import pytest
import torch

from lotus_core.lottery.common import schedule
from lotus_core.lottery.controls import ControlConfig, run_control
from lotus_core.lottery.lth import LTHConfig, round_masks, run_lth, rewind_state, ticket
from lotus_core.pruning.mask import Mask
from lotus_core.pruning.ranking import num_to_prune
from lotus_core.pruning.scope import scoped_parameters
from lotus_core.store import Store
from lotus_core.runs import Run, run_experiment, run_id_for

CFG = LTHConfig(target=0.6, prune_fraction=0.2, steps=8, lr=3e-3, batch_size=32, limit=50)


def test_schedule_compounds_the_prune_fraction_and_lands_on_target():
    assert schedule(0.6, 0.2) == [0.2, 0.36, 0.488, 0.5904, 0.6]
    assert schedule(0.5, 0.5) == [0.5]


def test_round_masks_have_exact_sizes_are_nested_and_keep_pruned_weights_zero(tiny_ctx):
    summary = run_experiment(tiny_ctx, "lth", CFG, run_lth)
    masks = round_masks(tiny_ctx, summary["run_id"])
    total = next(iter(masks.values())).numel()
    assert list(masks) == [1, 2, 3, 4, 5]
    assert [m.num_pruned() for m in masks.values()] == [num_to_prune(s, total) for s in schedule(0.6, 0.2)]
    for r in range(1, 5):
        assert all(torch.all(masks[r + 1][n] <= masks[r][n]) for n in masks[r])
    points = tiny_ctx.store.points(summary["run_id"])
    assert [p["round"] for p in points.values()] == [0, 1, 2, 3, 4, 5]
    assert points["round-5"]["sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert summary["train_steps"] == 6 * 8


def test_rewinding_restores_the_pretrained_or_late_weights(tiny_ctx):
    run_id = tiny_ctx.store.start_run("lth", {"cfg": "pretrained"})
    run = Run(tiny_ctx.store, run_id, "lth")
    mask = Mask.ones(scoped_parameters(tiny_ctx.model))
    rewound = ticket(tiny_ctx, rewind_state(tiny_ctx, CFG, run), mask)
    for (n, a), (_, b) in zip(rewound.state_dict().items(), tiny_ctx.model.state_dict().items()):
        assert torch.equal(a, b), n
    late = LTHConfig(**{**CFG.__dict__, "rewind": "step:3"})
    late_run = Run(tiny_ctx.store, tiny_ctx.store.start_run("lth", {"cfg": "late"}), "lth")
    late_ticket = ticket(tiny_ctx, rewind_state(tiny_ctx, late, late_run), mask)
    from lotus_core.training import TrainConfig, train

    by_hand = tiny_ctx.copy_model()
    train(by_hand, tiny_ctx.train, TrainConfig(steps=3, batch_size=32, lr=3e-3, weight_decay=0.0, seed=0), tiny_ctx.data_config)
    for (n, a), (_, b) in zip(late_ticket.state_dict().items(), by_hand.state_dict().items()):
        assert torch.equal(a, b), n


def test_resumed_run_equals_an_uninterrupted_one(tiny_ctx, tmp_path):
    full = run_experiment(tiny_ctx, "lth", CFG, run_lth)

    def stop_after_round_2(fields):
        if fields.get("round") == 2:
            raise KeyboardInterrupt

    other = dataclasses.replace(tiny_ctx, store=Store(tmp_path / "other.db"))  # same model, separate store
    with pytest.raises(KeyboardInterrupt):
        run_experiment(other, "lth", CFG, run_lth, on_progress=stop_after_round_2)
    assert len(other.store.points(run_id_for(other, "lth", CFG))) == 3
    resumed = run_experiment(other, "lth", CFG, run_lth)
    a, b = round_masks(tiny_ctx, full["run_id"]), round_masks(other, resumed["run_id"])
    assert list(a) == list(b) and all(torch.equal(a[r][n], b[r][n]) for r in a for n in a[r])
    pa, pb = tiny_ctx.store.points(full["run_id"]), other.store.points(resumed["run_id"])
    assert [p["accuracy"] for p in pa.values()] == [p["accuracy"] for p in pb.values()]


@pytest.mark.parametrize("kind", ["shuffle", "reinit"])
def test_controls_keep_the_layer_budget(tiny_ctx, kind):
    run_experiment(tiny_ctx, "lth", CFG, run_lth)
    out = run_experiment(tiny_ctx, "lth-control", ControlConfig(CFG, 3, kind), run_control)
    masks = round_masks(tiny_ctx, run_id_for(tiny_ctx, "lth", CFG))
    assert out["sparsity"] == pytest.approx(masks[3].sparsity)
    assert 0.0 <= out["accuracy"] <= 1.0 and out["round"] == 3
