"""Every pruning and ticket method is its authors' algorithm: each test pins the method's defining
property, computed here from the paper's formula on a tiny model, independently of lotus_core's code
(docs/audit.md has the comparisons against the reference repositories). Each fails on the defect it
guards against (a signed SynFlow score, edge-popup's straight-through on the raw scores, GraSP without
its temperature, RigL stepping on a mask update, ...)."""
import copy
import importlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lotus_core.lottery.rigl import RigLConfig
from lotus_core.lottery.supermask import SupermaskConfig, attach, detach
from lotus_core.models.arch import data_config
from lotus_core.pruning import PRUNERS, prune, scoped_parameters
from lotus_core.pruning.grasp import GraSPOptions, grasp_scores
from lotus_core.pruning.sweep import SweepConfig, point_config
from lotus_core.results.keys import experiment_config
from lotus_core.training.train import TrainConfig, train
from tests.conftest import make_tiny_imageset

synflow_module = importlib.import_module("lotus_core.pruning.synflow")  # the package's `synflow` is the function


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def keep_top(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """The paper's global rule: prune the round(sparsity * n) lowest scores, keep the rest."""
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    pruned = round(sparsity * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:pruned]] = False
    out, at = {}, 0
    for n, s in scores.items():
        out[n] = keep[at: at + s.numel()].reshape(s.shape)
        at += s.numel()
    return out


def same_masks(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


# --- SynFlow (Tanaka et al. 2020; ganguli-lab/Synaptic-Flow SynFlow.score) ---------------------------------

def synflow_reference(model: nn.Module, names: list[str], shape) -> dict[str, torch.Tensor]:
    """|dR/dθ ⊙ θ|, R = 1ᵀ f(1) of the network with every parameter replaced by |θ| (float64)."""
    net = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.abs())
    params = dict(net.named_parameters())
    r = net(torch.ones(1, *shape, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(r, [params[n] for n in names])
    return {n: (g * params[n]).abs().detach() for n, g in zip(names, grads)}


def test_synflow_ranks_the_absolute_synaptic_flow(tiny_vit):
    names = list(scoped_parameters(tiny_vit))
    expected = synflow_reference(tiny_vit, names, (1, 28, 28))
    signed = synflow_module.synflow_scores(synflow_module.linearised(copy.deepcopy(tiny_vit)), names, (1, 28, 28))
    for n in names:
        assert torch.allclose(signed[n], expected[n], rtol=1e-9, atol=0), n
    # one round is one-shot SynFlow: the mask keeps the highest |dR/dθ ⊙ θ| (the signed score would not:
    # LayerNorm and GELU make about half of dR/dθ ⊙ θ negative on a ViT)
    assert same_masks(prune(tiny_vit, "synflow", 0.8, rounds=1), keep_top(expected, 0.8))


def test_synflow_closed_form_on_a_bias_free_linear_chain():
    torch.manual_seed(3)
    sizes = [6, 5, 4, 3]
    net = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:])])
    names = [f"{i}.weight" for i in range(3)]
    w = [p.detach().abs().double() for p in net.parameters()]
    scores = synflow_module.synflow_scores(synflow_module.linearised(copy.deepcopy(net)), names, (6,))
    ones_in, ones_out = torch.ones(6, 1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    # S(W_l)_ij = (1ᵀ |W_L| .. |W_l+1|)_i |W_l|_ij (|W_l-1| .. |W_1| 1)_j
    closed = [(ones_out @ w[2] @ w[1]).T * w[0] * ones_in.T,
              (ones_out @ w[2]).T * w[1] * (w[0] @ ones_in).T,
              ones_out.T * w[2] * (w[1] @ w[0] @ ones_in).T]
    for name, c in zip(names, closed):
        assert torch.allclose(scores[name], c, rtol=1e-12), name


def test_synflow_keeps_earlier_rounds_pruned_whatever_the_scores(tiny_vit, monkeypatch):
    """Iterative pruning only removes: a weight pruned in round 1 stays pruned in round 2, even when every
    score is below -1 (the earlier "-1 marks pruned" rule revived them then)."""
    names = list(scoped_parameters(tiny_vit))
    g = torch.Generator().manual_seed(1)
    calls = []

    def scores(model, ns, shape):
        out = {n: -10 - 5 * torch.rand(dict(model.named_parameters())[n].shape, generator=g, dtype=torch.float64)
               for n in ns}
        calls.append(out)
        return out

    monkeypatch.setattr(synflow_module, "synflow_scores", scores)
    final = synflow_module.synflow_mask(tiny_vit, names, 0.5, (1, 28, 28), rounds=2)
    first = keep_top(calls[0], 1 - 0.5 ** 0.5)
    assert all(not (final[n] & ~first[n]).any() for n in names)
    assert final.num_pruned() == round(0.5 * final.numel())


# --- edge-popup (Ramanujan et al. 2020; allenai/hidden-networks GetSubnet on scores.abs()) -------------------

def test_edge_popup_gradient_reaches_the_scores_through_their_absolute_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 4))
    x, y = torch.randn(10, 8), torch.randint(0, 4, (10,))
    frozen = {n: p.detach().clone() for n, p in net.named_parameters()}
    popups = attach(net, ["0.weight", "2.weight"], density=0.5, seed=0)
    scores = {n: p.scores.detach().clone() for n, p in popups.items()}
    assert all((s < 0).any() and (s > 0).any() for s in scores.values())  # both signs: the test can tell
    F.cross_entropy(net(x), y).backward()

    # the paper: W_eff = W ⊙ h(|s|), h the top-k indicator, straight-through: dL/d|s| = dL/dW_eff ⊙ W
    eff = {}
    for n, s in scores.items():
        flat = s.abs().reshape(-1)
        keep = torch.zeros_like(flat)
        keep[torch.argsort(flat, descending=True, stable=True)[: round(0.5 * flat.numel())]] = 1
        eff[n] = (frozen[n] * keep.reshape(s.shape)).requires_grad_(True)
    h = F.gelu(F.linear(x, eff["0.weight"], frozen["0.bias"]))
    F.cross_entropy(F.linear(h, eff["2.weight"], frozen["2.bias"]), y).backward()
    for n, s in scores.items():
        through_abs = eff[n].grad * frozen[n] * torch.sign(s)  # d|s|/ds = sign(s)
        assert torch.allclose(popups[n].scores.grad, through_abs, rtol=1e-5, atol=1e-8), n
    mask = detach(net, popups)
    assert mask.num_pruned() == round(0.5 * mask.numel())


def test_edge_popup_scores_start_as_the_authors_kaiming_uniform():
    net = nn.Sequential(nn.Linear(64, 3))
    s = attach(net, ["0.weight"], density=0.5, seed=0)["0.weight"].scores
    top = float(s.detach().abs().max())
    assert 0.9 / math.sqrt(64) < top <= 1 / math.sqrt(64)


# --- GraSP (Wang et al. 2020; alecwangcq/GraSP pruner/GraSP.py, T = 200) -----------------------------------

def _flat_loss(net, x, y, temperature):
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]

    def loss(flat):
        a, b = (c.reshape(s) for c, s in zip(torch.split(flat, sizes), shapes))
        return F.cross_entropy(torch.tanh(x @ a.T) @ b.T / temperature, y)

    return loss


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_score_is_minus_theta_hg_of_the_tempered_loss(temperature):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 3, bias=False))
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double()
    loss = _flat_loss(net, x.double(), y, temperature)
    hg = torch.autograd.functional.hessian(loss, flat) @ torch.autograd.functional.jacobian(loss, flat)
    minus_s = flat * hg  # S = -θ ⊙ Hg; LOTUS ranks -S (lowest pruned first)
    scores = grasp_scores(net, ["0.weight", "2.weight"], x, y, temperature=temperature)
    got = torch.cat([scores["0.weight"].reshape(-1), scores["2.weight"].reshape(-1)]).double()
    assert torch.allclose(got, minus_s, rtol=1e-3, atol=1e-6 * float(minus_s.abs().max()))


def test_grasp_defaults_to_the_authors_temperature_and_it_changes_the_mask(tiny_vit):
    assert GraSPOptions().temperature == 200.0
    x, y = batch()
    names = list(scoped_parameters(tiny_vit))
    at = {t: keep_top(grasp_scores(tiny_vit, names, x, y, temperature=t), 0.5) for t in (1.0, 200.0)}
    assert same_masks(prune(tiny_vit, "grasp", 0.5, calib=x, labels=y), at[200.0])
    assert same_masks(prune(tiny_vit, "grasp", 0.5, calib=x, labels=y, temperature=1.0), at[1.0])
    assert not same_masks(at[1.0], at[200.0])


# --- SNIP (Lee et al. 2019): |g ⊙ θ| ----------------------------------------------------------------------

def test_snip_keeps_the_largest_connection_sensitivity(tiny_vit):
    x, y = batch()
    net = copy.deepcopy(tiny_vit).eval()
    params = dict(net.named_parameters())
    names = list(scoped_parameters(tiny_vit))
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), [params[n] for n in names])
    sensitivity = {n: (g * params[n]).abs().detach() for n, g in zip(names, grads)}
    signed = {n: (g * params[n]).detach() for n, g in zip(names, grads)}
    mask = prune(tiny_vit, "snip", 0.6, calib=x, labels=y)
    assert same_masks(mask, keep_top(sensitivity, 0.6))
    assert not same_masks(mask, keep_top(signed, 0.6))


# --- Wanda (Sun et al. 2024): |W| · ||X||₂ per output row -----------------------------------------------

def test_wanda_compares_weight_times_input_norm_within_each_output_row(tiny_vit):
    x, _ = batch()
    names = list(scoped_parameters(tiny_vit))
    modules, inputs = dict(tiny_vit.named_modules()), {}

    def keep_input(mod, inp, out, name):
        inputs[name] = inp[0].detach().reshape(-1, inp[0].shape[-1])  # (tokens, in)

    hooks = [modules[n.rsplit(".", 1)[0]].register_forward_hook(lambda *a, n=n: keep_input(*a, n)) for n in names]
    with torch.no_grad():
        tiny_vit(x)
    for h in hooks:
        h.remove()
    mask = prune(tiny_vit, "wanda", 0.5, calib=x)
    params = dict(tiny_vit.named_parameters())
    for n in names:
        score = params[n].detach().abs() * inputs[n].norm(dim=0)[None, :]  # (out, in)
        k = round(0.5 * score.shape[1])
        expected = torch.ones_like(score, dtype=torch.bool).scatter_(
            1, torch.argsort(score, dim=1, stable=True)[:, :k], False)
        assert torch.equal(mask[n], expected), n


# --- N:M (Mishra et al. 2021) ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8)])
def test_nm_keeps_exactly_n_of_every_m_consecutive_inputs_the_largest(tiny_vit, n, m):
    mask = prune(tiny_vit, "nm", 0.0, n=n, m=m)
    params = dict(tiny_vit.named_parameters())
    for name, keep in mask.items():
        groups, w = keep.reshape(-1, m), params[name].detach().abs().reshape(-1, m)
        assert (groups.sum(dim=1) == n).all(), name
        kept_min = torch.where(groups, w, torch.full_like(w, math.inf)).min(dim=1).values
        gone_max = torch.where(groups, torch.full_like(w, -math.inf), w).max(dim=1).values
        assert (kept_min >= gone_max).all(), name


def test_sparsegpt_nm_keeps_exactly_n_of_every_m(tiny_vit):
    x, _ = batch()
    mask = prune(tiny_vit, "sparsegpt-nm", 0.0, calib=x, n=2, m=4)
    assert all((keep.reshape(-1, 4).sum(dim=1) == 2).all() for keep in mask.values())


# --- RigL (Evci et al. 2020; google-research/rigl SparseRigLOptimizerBase.apply_gradients) ------------------

def test_rigl_update_iteration_takes_no_optimizer_step(tiny_vit):
    data = make_tiny_imageset(64, seed=1, split="train")
    names = list(scoped_parameters(tiny_vit))
    start = prune(tiny_vit, "omp", 0.5)
    swapped = {}
    for n in names:  # the new mask: the start with one kept entry swapped for one pruned entry per tensor
        flat = start[n].reshape(-1).clone()
        on, off = int(flat.nonzero()[0]), int((~flat).nonzero()[0])
        flat[on], flat[off] = False, True
        swapped[n] = flat.reshape(start[n].shape)
    after = {}

    def update(step, model):
        return swapped if step == 2 else None

    def record(step, model):
        after[step] = {k: v.detach().clone() for k, v in model.named_parameters()}

    result = train(tiny_vit, data, TrainConfig(steps=3, batch_size=16, lr=1e-2, weight_decay=0.0, seed=0),
                   data_config(tiny_vit), mask=start, update_mask=update, on_step=record)
    assert not torch.equal(after[2]["head.weight"], after[1]["head.weight"])  # an ordinary step moves weights
    for k, v in after[3].items():  # the update iteration (index 2, the third): weights only masked
        expected = after[2][k] * swapped[k] if k in swapped else after[2][k]
        assert torch.equal(v, expected), k
    params = [p for p in tiny_vit.parameters()]
    state = result.optimizer_state["state"]
    for n in names:  # no moments for the grown connections (rigl's reset_momentum)
        i = [q for q, _ in tiny_vit.named_parameters()].index(n)
        grown = swapped[n] & ~start[n]
        assert all(float(s[grown].abs().sum()) == 0 for s in state[i].values() if torch.is_tensor(s)
                   and s.shape == params[i].shape)


# --- the corrected algorithms are keyed apart from the old ones; every other key is unchanged --------------

def test_corrected_methods_carry_a_revision_in_their_keys_and_the_others_do_not(tiny_ctx):
    assert experiment_config(tiny_ctx, "rigl", RigLConfig())["revision"] == 1
    assert experiment_config(tiny_ctx, "supermask", SupermaskConfig())["revision"] == 1
    assert experiment_config(tiny_ctx, "sweep", SweepConfig(methods=("omp", "synflow", "grasp")))["revision"] == {
        "synflow": 1, "grasp": 1}
    assert "revision" not in experiment_config(tiny_ctx, "sweep", SweepConfig(methods=("omp", "random")))
    cfg = SweepConfig(methods=("omp", "grasp", "synflow"))
    assert point_config(cfg, "grasp", 0.5)["revision"] == 1 and point_config(cfg, "grasp", 0.5)["temperature"] == 200
    assert point_config(cfg, "synflow", 0.5)["revision"] == 1
    for method in ("omp", "omp-layerwise", "random", "nm", "wanda", "sparsegpt", "sparsegpt-nm", "snip", "snip-reinit"):
        assert PRUNERS[method].revision == 0 and "revision" not in point_config(cfg, method, 0.5), method
    assert point_config(cfg, "omp", 0.5) == {"method": "omp", "sparsity": 0.5, "scope": "blocks", "limit": cfg.limit,
                                             "seed": 0}


def test_evit_fuses_the_inattentive_tokens_as_their_attention_weighted_sum():
    """EViT (Liang et al., ICLR 2022; youweiliang/evit ``Block.forward``): after the attention residual of a
    reducing block, keep the ceil(keep * patches) patch tokens with the largest head-averaged CLS attention
    a_i (in that order) and fuse the rest into one token ``sum_i a_i x_i``, not renormalised by ``sum_i a_i``.
    Written out here from the block's own modules, with the attention softmax computed by hand."""
    from lotus_core.speed import tokens
    from tests.conftest import make_tiny_vit

    model = make_tiny_vit(4).eval()
    x_in, _ = batch(3, seed=5)
    keep = 0.5
    with torch.no_grad():
        x = model._pos_embed(model.patch_embed(x_in))
        x = model.norm_pre(model.patch_drop(x))
        block, attn = model.blocks[0], model.blocks[0].attn
        h = block.norm1(x)
        B, N, C = h.shape
        qkv = attn.qkv(h).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], attn.k_norm(qkv[1]), qkv[2]
        weights = (attn.q_norm(q) * attn.head_dim ** -0.5 @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, N, N)
        out = attn.proj((weights @ v).transpose(1, 2).reshape(B, N, C))
        x = x + block.ls1(out)
        a = weights[:, :, 0, 1:].mean(dim=1)  # (B, P)
        k_keep = math.ceil(keep * (N - 1))
        order = a.argsort(dim=1, descending=True)
        rows = []
        for b in range(B):
            kept, rest = order[b, :k_keep], order[b, k_keep:]
            fused = (x[b, 1:][rest] * a[b, rest].unsqueeze(-1)).sum(dim=0, keepdim=True)
            rows.append(torch.cat([x[b, :1], x[b, 1:][kept], fused]))
        x = torch.stack(rows)
        x = x + block.ls2(block.mlp(block.norm2(x)))
        for later in model.blocks[1:]:
            x = later(x)
        want = model.forward_head(model.norm(x))
        got = tokens.evit_forward(model, x_in, keep=keep, fuse=True, blocks=[0])
    assert float(a.sum(dim=1).max()) < 1.0  # the CLS token's self-attention is left out: a renormalised mean differs
    assert torch.allclose(got, want, atol=1e-5, rtol=0)
