"""Instability analysis: interpolation, the error barrier, one run's snapshots, stored and resumed."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lotus_core.core.errors import LotusError
from lotus_core.lottery.common import load_state_bytes
from lotus_core.lottery.instability import (InstabilityConfig, barrier, error_curve, interpolate, run_instability,
                                            smallest_stable_k)
from lotus_core.results.runs import Run, run_experiment, run_id_for
from tests.conftest import make_tiny_vit

TINY = InstabilityConfig(ks=(0, 2), steps=3, batch_size=16, alphas=3, limit=50)


def test_the_barrier_of_a_model_with_itself_is_zero(tiny_ctx):
    errors = error_curve(tiny_ctx, tiny_ctx.model, tiny_ctx.model, alphas=5, limit=50)
    assert len(errors) == 5 and len(set(errors)) == 1 and barrier(errors) == 0.0


def test_interpolation_ends_are_the_two_models_and_the_middle_is_the_mean(tiny_vit):
    other = make_tiny_vit(1)
    for alpha, expect in ((0.0, tiny_vit), (1.0, other)):
        got = interpolate(tiny_vit, other, alpha).state_dict()
        assert all(torch.equal(got[k], v) for k, v in expect.state_dict().items())
    mid, a, b = interpolate(tiny_vit, other, 0.5).state_dict(), tiny_vit.state_dict(), other.state_dict()
    assert all(torch.allclose(mid[k], (a[k] + b[k]) / 2, atol=1e-7) for k in a)


@given(st.lists(st.floats(0, 1), min_size=2, max_size=12))
def test_barrier_is_max_minus_the_mean_of_the_ends(errors):
    assert barrier(errors) == max(errors) - (errors[0] + errors[-1]) / 2
    assert barrier(errors) >= 0  # the max includes both ends, so it is at least their mean


def test_smallest_stable_k():
    points = [{"k": 0, "barrier": 0.10}, {"k": 10, "barrier": 0.015}, {"k": 25, "barrier": 0.03}, {"k": 50, "barrier": 0.0}]
    assert smallest_stable_k(points, 0.02) == 10 and smallest_stable_k(points, 0.0) == 50
    assert smallest_stable_k(points[:1], 0.02) is None


def test_analysis_is_stored_resumable_and_snapshots_come_from_one_run(tiny_ctx):
    out = run_experiment(tiny_ctx, "instability", TINY, run_instability)
    run = Run(tiny_ctx.store, run_id_for(tiny_ctx, "instability", TINY), "instability")
    points = run.points()
    assert sorted(points) == ["k-0", "k-2"] and set(out["barriers"]) == {"0", "2"}
    for p in points.values():
        assert len(p["errors"]) == 3 and p["barrier"] == barrier(p["errors"]) and p["end_errors"] == [p["errors"][0], p["errors"][-1]]
    step0 = load_state_bytes(make_tiny_vit(0), run.blob("step-0.safetensors")).state_dict()
    assert all(torch.equal(step0[k], v) for k, v in tiny_ctx.model.state_dict().items())  # k = 0: the start of the run
    step2 = load_state_bytes(make_tiny_vit(0), run.blob("step-2.safetensors")).state_dict()
    assert any(not torch.equal(step2[k], v) for k, v in tiny_ctx.model.state_dict().items())
    assert run_experiment(tiny_ctx, "instability", TINY, run_instability) == out  # served, not recomputed


def test_a_ticket_holds_its_mask_and_bad_configs_are_refused(tiny_ctx):
    cfg = InstabilityConfig(ks=(1,), steps=2, batch_size=16, alphas=2, limit=50, sparsity=0.5)
    run_experiment(tiny_ctx, "instability", cfg, run_instability)
    run = Run(tiny_ctx.store, run_id_for(tiny_ctx, "instability", cfg), "instability")
    state = load_state_bytes(make_tiny_vit(0), run.blob("step-1.safetensors")).state_dict()
    pruned = sum(int((state[n] == 0).sum()) for n in state if n.startswith("blocks.") and n.endswith("weight")
                 and state[n].dim() == 2)
    total = sum(state[n].numel() for n in state if n.startswith("blocks.") and n.endswith("weight") and state[n].dim() == 2)
    assert pruned == round(0.5 * total)
    with pytest.raises(LotusError, match=r"must lie in \[0, steps=3\]"):
        run_instability(tiny_ctx, InstabilityConfig(ks=(5,), steps=3), None)


def test_cli_instability_reports_barriers_and_refuses_bad_points(capsys, tmp_path):
    from tests.commands.test_core import run_cli

    db = str(tmp_path / "r.db")
    code, out, err = run_cli(capsys, "instability", "--ks", "x,1", "--db", db)
    assert code == 2 and "cannot read rewinding points 'x,1'" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "instability", "--ks", "0,9", "--steps", "2", "--db", db)
    assert code == 2 and "rewinding point 9 is outside 0..2" in err and err.count("\n") == 1


def test_the_barrier_is_drawn_against_k_per_ticket_and_against_sparsity_per_k():
    import pandas as pd

    from lotus_core.views.figures import barrier_curve

    frame = pd.DataFrame({"series": ["dense", "dense", "50%", "50%"], "k": [0, 25, 0, 25],
                          "barrier": [0.001, 0.002, 0.01, 0.03], "sparsity": [0.0, 0.0, 0.5, 0.5]})
    by_k = barrier_curve(frame)
    assert [t.name for t in by_k.data] == ["dense", "50%"] and list(by_k.data[1].y) == pytest.approx([1.0, 3.0])
    by_s = barrier_curve(frame, against="sparsity")
    assert [t.name for t in by_s.data] == ["k = 0", "k = 25"]
    assert list(by_s.data[1].x) == [0.0, 50.0] and list(by_s.data[1].y) == pytest.approx([0.2, 3.0])
    assert by_s.layout.xaxis.title.text == "ticket sparsity (% of scoped weights pruned)"
    assert by_s.layout.shapes[0].y0 == 2.0  # the 2-point tolerance
