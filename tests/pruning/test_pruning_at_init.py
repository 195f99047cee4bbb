"""SNIP, GraSP and SynFlow: their scores against direct computations and closed forms."""
import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lotus_core.core.errors import LotusError
from lotus_core.pruning import prune, scoped_parameters
from lotus_core.pruning.grasp import grasp_scores
from lotus_core.pruning.ranking import GlobalRanking
from lotus_core.pruning.snip import snip_scores
from lotus_core.pruning.synflow import linearised, synflow_mask, synflow_scores


def batch(n=12):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_snip_equals_grad_times_weight_computed_directly(tiny_vit):
    x, y = batch()
    model = tiny_vit
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    params = scoped_parameters(model)
    direct = {n: (p.grad * p).abs().detach() for n, p in params.items()}
    model.zero_grad()
    scores = snip_scores(model, list(params), x, y)
    assert all(torch.allclose(scores[n], direct[n], rtol=1e-5, atol=0) for n in params)
    mask = prune(model, "snip", 0.6, calib=x, labels=y)
    assert all(torch.equal(mask[n], GlobalRanking(direct).mask(0.6)[n]) for n in params)


def test_reinit_variants_score_a_seeded_reinitialisation_not_the_weights(tiny_vit):
    x, y = batch()
    a = prune(tiny_vit, "snip-reinit", 0.5, calib=x, labels=y, seed=1)
    assert all(torch.equal(a[n], prune(tiny_vit, "snip-reinit", 0.5, calib=x, labels=y, seed=1)[n]) for n in a)
    assert any(not torch.equal(a[n], prune(tiny_vit, "snip", 0.5, calib=x, labels=y)[n]) for n in a)
    assert any(not torch.equal(a[n], prune(tiny_vit, "snip-reinit", 0.5, calib=x, labels=y, seed=2)[n]) for n in a)


def _flat_loss(net, x, y):
    shapes = [p.shape for p in net.parameters()]

    def loss(flat):
        chunks, i = [], 0
        for s in shapes:
            chunks.append(flat[i:i + s.numel()].reshape(s))
            i += s.numel()
        h = torch.tanh(x @ chunks[0].T)
        return F.cross_entropy(h @ chunks[1].T, y)

    return loss


def test_grasp_equals_weight_times_the_explicit_hessian_gradient_product():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 3, bias=False))
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double()
    loss = _flat_loss(net, x.double(), y)
    g = torch.autograd.functional.jacobian(loss, flat)
    hg = torch.autograd.functional.hessian(loss, flat) @ g  # (P,)
    expected = (flat * hg).float()
    scores = grasp_scores(net, ["0.weight", "2.weight"], x, y, temperature=1.0)  # the plain loss (test_faithful: T)
    got = torch.cat([scores["0.weight"].reshape(-1), scores["2.weight"].reshape(-1)])
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_grasp_prunes_the_highest_minus_w_hg_first(tiny_vit):
    x, y = batch()
    scores = grasp_scores(tiny_vit, list(scoped_parameters(tiny_vit)), x, y)
    mask = prune(tiny_vit, "grasp", 0.5, calib=x, labels=y)
    kept = torch.cat([scores[n][mask[n]] for n in mask])
    gone = torch.cat([scores[n][~mask[n]] for n in mask])
    assert float(gone.max()) <= float(kept.min())  # S = -w Hg: every pruned S is at least every kept S
    assert mask.num_pruned() == round(0.5 * mask.numel())


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=3, max_size=4), seed=st.integers(0, 10_000))
def test_synflow_scores_equal_the_closed_form_on_a_linear_chain(sizes, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:])])
    names = [f"{i}.weight" for i in range(len(sizes) - 1)]
    absw = [p.detach().abs().double() for p in net.parameters()]
    scores = synflow_scores(linearised(net), names, (sizes[0],))
    for i, name in enumerate(names):
        left = torch.ones(1, sizes[-1], dtype=torch.float64)  # 1^T |W_L| ... |W_{i+1}|
        for w in reversed(absw[i + 1:]):
            left = left @ w
        right = torch.ones(sizes[0], 1, dtype=torch.float64)  # |W_{i-1}| ... |W_1| 1
        for w in absw[:i]:
            right = w @ right
        assert torch.allclose(scores[name], left.T * absw[i] * right.T, rtol=1e-10), name


def test_synflow_is_iterative_exact_and_data_free(tiny_vit):
    names = list(scoped_parameters(tiny_vit))
    one = synflow_mask(tiny_vit, names, 0.8, (1, 28, 28), rounds=1)
    scores = synflow_scores(linearised(copy.deepcopy(tiny_vit)), names, (1, 28, 28))
    assert all(torch.equal(one[n], GlobalRanking(scores).mask(0.8)[n]) for n in names)  # 1 round = one shot
    many = prune(tiny_vit, "synflow", 0.8, rounds=20)
    assert many.num_pruned() == round(0.8 * many.numel())
    assert any(not torch.equal(many[n], one[n]) for n in names)
    with pytest.raises(LotusError, match="at least 1 round"):
        prune(tiny_vit, "synflow", 0.5, rounds=0)


def test_missing_labels_are_a_one_line_error(tiny_vit):
    x, _ = batch()
    with pytest.raises(LotusError, match="snip needs a labelled calibration batch"):
        prune(tiny_vit, "snip", 0.5, calib=x)
