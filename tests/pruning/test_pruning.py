import copy

import pytest
import torch
import torch.nn.utils.prune as tprune

from lotus_core.core.errors import LotusError
from lotus_core.pruning import PRUNERS, Mask, prune, random_like, scoped_parameters
from lotus_core.pruning.ranking import num_to_prune


def calib(n=8):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_scope_is_block_linear_weights_only(tiny_vit):
    names = list(scoped_parameters(tiny_vit))
    assert names == [f"blocks.{b}.{k}.weight" for b in range(2) for k in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")]
    assert "head.weight" in scoped_parameters(tiny_vit, "blocks+head")
    with pytest.raises(LotusError, match="unknown scope"):
        scoped_parameters(tiny_vit, "everything")


@pytest.mark.parametrize("sparsity", [0.1, 0.37, 0.5, 0.9])
def test_omp_equals_torch_global_unstructured_l1(tiny_vit, sparsity):
    mask = prune(tiny_vit, "omp", sparsity)
    ref = copy.deepcopy(tiny_vit)
    params = scoped_parameters(ref)
    modules = dict(ref.named_modules())
    targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in params]
    tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=sparsity)
    for (mod, _), name in zip(targets, params):
        assert torch.equal(mask[name], mod.weight_mask.bool()), name
    total = sum(p.numel() for p in params.values())
    assert mask.num_pruned() == round(sparsity * total)


def test_omp_masks_are_nested_across_sparsities(tiny_vit):
    masks = [prune(tiny_vit, "omp", s) for s in (0.2, 0.5, 0.8)]
    for dense, sparse in zip(masks, masks[1:]):
        assert all(torch.all(sparse[n] <= dense[n]) for n in dense)  # kept at higher sparsity => kept before


def test_layerwise_prunes_the_same_fraction_in_every_layer(tiny_vit):
    mask = prune(tiny_vit, "omp-layerwise", 0.37)
    for name, t in mask.items():
        assert int((~t).sum()) == num_to_prune(0.37, t.numel()), name


def test_random_global_and_with_a_given_layer_budget(tiny_vit):
    a = prune(tiny_vit, "random", 0.4, seed=1)
    assert a.num_pruned() == round(0.4 * a.numel())
    assert torch.equal(a["blocks.0.mlp.fc1.weight"], prune(tiny_vit, "random", 0.4, seed=1)["blocks.0.mlp.fc1.weight"])
    omp = prune(tiny_vit, "omp", 0.6)
    like = prune(tiny_vit, "random", 0.0, like=omp, seed=3)
    assert {n: int(t.sum()) for n, t in like.items()} == {n: int(t.sum()) for n, t in omp.items()}
    assert like.layer_sparsity() == omp.layer_sparsity()
    assert any(not torch.equal(like[n], omp[n]) for n in omp)
    assert random_like(omp, seed=3).layer_sparsity() == like.layer_sparsity()


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_nm_keeps_exactly_n_of_every_m_along_inputs(tiny_vit, n, m):
    mask = prune(tiny_vit, "nm", 0.0, n=n, m=m)
    for name, t in mask.items():
        groups = t.reshape(-1, m)
        assert torch.all(groups.sum(dim=1) == n), name
    assert mask.sparsity == pytest.approx(1 - n / m)
    w = scoped_parameters(tiny_vit)["blocks.0.mlp.fc2.weight"].detach().abs().reshape(-1, m)
    kept = mask["blocks.0.mlp.fc2.weight"].reshape(-1, m)
    assert torch.all(w[kept].reshape(-1, n).min(dim=1).values >= w[~kept].reshape(-1, m - n).max(dim=1).values)


def test_nm_that_does_not_fit_the_layers_is_refused(tiny_vit):
    with pytest.raises(LotusError, match="not a multiple of M=5"):
        prune(tiny_vit, "nm", 0.0, n=2, m=5)
    with pytest.raises(LotusError, match="not a valid pattern"):
        prune(tiny_vit, "nm", 0.0, n=4, m=4)


def test_wanda_scores_weight_times_input_norm_within_rows(tiny_vit):
    x = calib()
    mask = prune(tiny_vit, "wanda", 0.5, calib=x)
    for name, t in mask.items():
        assert torch.all((~t).sum(dim=1) == round(0.5 * t.shape[1])), name  # per-row sparsity
    # recompute fc1 of block 1 by hand: its input is norm2(x) of the residual stream
    feats = {}
    h = tiny_vit.blocks[1].mlp.fc1.register_forward_hook(lambda m, i, o: feats.update(x=i[0]))
    with torch.no_grad():
        tiny_vit(x)
    h.remove()
    norm = feats["x"].reshape(-1, feats["x"].shape[-1]).pow(2).sum(0).sqrt()
    score = tiny_vit.blocks[1].mlp.fc1.weight.detach().abs() * norm[None, :]
    expect = score >= torch.sort(score, dim=1).values[:, [round(0.5 * score.shape[1])]]
    assert torch.equal(mask["blocks.1.mlp.fc1.weight"], expect)
    with pytest.raises(LotusError, match="needs calibration"):
        prune(tiny_vit, "wanda", 0.5)


@pytest.mark.parametrize("method", list(PRUNERS))
def test_every_method_gives_a_valid_mask_and_leaves_the_model_untouched(tiny_vit, method):
    before = copy.deepcopy(tiny_vit.state_dict())
    fast = {"rounds": 5} if method.startswith("synflow") else {}  # an option another method lacks is refused
    mask = prune(tiny_vit, method, 0.5, calib=calib(), labels=torch.arange(8) % 10, **fast)
    mask.validate(tiny_vit)
    pruned = mask.apply(tiny_vit)
    for name, keep in mask.items():
        assert torch.count_nonzero(dict(pruned.named_parameters())[name][~keep]) == 0
    assert all(torch.equal(before[k], v) for k, v in tiny_vit.state_dict().items())
    assert 0.45 <= mask.sparsity <= 0.55


def test_sparsity_outside_unit_interval_and_unknown_method(tiny_vit):
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(LotusError, match="outside \\[0, 1\\)"):
            prune(tiny_vit, "omp", bad)
    with pytest.raises(LotusError, match="unknown pruning method 'magic'"):
        prune(tiny_vit, "magic", 0.5)
    with pytest.raises(LotusError, match="^omp has no options of its own; drop 'rounds'$"):  # never silently dropped
        prune(tiny_vit, "omp", 0.5, rounds=5)
    with pytest.raises(LotusError, match="^NMOptions has no setting 'rounds'; its settings are n, m$"):
        prune(tiny_vit, "nm", 0.5, rounds=5)


def test_mask_roundtrip_invariants_and_mismatch_messages(tiny_vit, tmp_path):
    mask = prune(tiny_vit, "omp", 0.3)
    loaded = Mask.load(mask.save(tmp_path / "m.safetensors"))
    assert set(loaded) == set(mask) and all(torch.equal(loaded[n], mask[n]) for n in mask)
    assert loaded.sparsity == mask.sparsity == pytest.approx(round(0.3 * mask.numel()) / mask.numel())
    with pytest.raises(LotusError, match="not a boolean tensor"):
        Mask({"blocks.0.mlp.fc1.weight": torch.ones(3)})
    bad = Mask({"blocks.0.mlp.fc1.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(LotusError, match="has shape \\(3, 3\\)"):
        bad.validate(tiny_vit)
    with pytest.raises(LotusError, match="does not have"):
        Mask({"nope.weight": torch.ones(1, dtype=torch.bool)}).validate(tiny_vit)
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(LotusError, match="not a safetensors mask"):
        Mask.load(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("method", ["omp", "omp-layerwise", "random", "wanda"])
def test_a_masker_sorts_once_for_all_levels_and_equals_prune(tiny_vit, method, monkeypatch):
    from lotus_core.pruning import masker

    x = calib()
    sorts = []
    real = torch.argsort
    monkeypatch.setattr(torch, "argsort", lambda *a, **k: sorts.append(1) or real(*a, **k))
    make = masker(tiny_vit, method, calib=x, seed=2)
    after_ranking = len(sorts)
    masks = {s: make(s) for s in (0.1, 0.3, 0.5, 0.7, 0.9)}
    assert len(sorts) == after_ranking  # thresholds only: no sort per level
    assert after_ranking == (1 if method in ("omp", "random") else len(masks[0.1]))  # one global sort, or one per tensor
    monkeypatch.setattr(torch, "argsort", real)
    for s, mask in masks.items():
        ref = prune(tiny_vit, method, s, calib=x, seed=2)
        assert all(torch.equal(mask[n], ref[n]) for n in ref), s



def test_ties_are_pruned_in_flat_order_and_masks_stay_nested(tiny_vit):
    model = copy.deepcopy(tiny_vit)
    with torch.no_grad():
        for p in scoped_parameters(model).values():
            p.copy_(torch.round(p * 20) / 20)  # many equal magnitudes
    masks = [prune(model, "omp", s) for s in (0.3, 0.5, 0.7)]
    for s, mask in zip((0.3, 0.5, 0.7), masks):
        assert mask.num_pruned() == round(s * mask.numel())
    for dense, sparse in zip(masks, masks[1:]):
        assert all(torch.all(sparse[n] <= dense[n]) for n in dense)
    w = torch.cat([p.detach().abs().reshape(-1) for p in scoped_parameters(model).values()])
    keep = torch.cat([t.reshape(-1) for t in masks[1].values()])
    assert w[~keep].max() <= w[keep].min()  # never a larger weight pruned before a smaller one
    tied = (w == w[~keep].max()).nonzero().flatten()
    pruned_tied = tied[~keep[tied]]
    assert torch.equal(pruned_tied, tied[: len(pruned_tied)])  # among equals, the earlier entries go first
