"""Patch scorers, the patch grid, selection and the two ways of applying a selection."""
import math

import numpy as np
import pytest
import timm
import torch
from torch import nn

from lotus_core.data.images import to_model_input
from lotus_core.core.errors import LotusError
from lotus_core.models.arch import data_config
from lotus_core.patches import SCORERS, ScoreOptions, patch_grid, score_images, score_patches
from lotus_core.patches.attention import attention_maps, attention_modules
from lotus_core.patches.select import (drop_count, drop_tokens, fill_value, mask_pixels, patch_ranks,
                                       select_patches)
from tests.conftest import make_tiny_imageset, make_tiny_vit


def model_input(model, data, n=6):
    return to_model_input(data.images[:n], data_config(model))


def direct_attention(model, x):
    """Attention maps computed by hand from each block's qkv weights (no timm attention code)."""
    inputs = []
    hooks = [blk.attn.register_forward_pre_hook(lambda m, args: inputs.append(args[0])) for blk in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    maps = []
    for blk, t in zip(model.blocks, inputs):
        t = t.detach()
        a = blk.attn
        b, n, _ = t.shape
        qkv = (t @ a.qkv.weight.T + a.qkv.bias).reshape(b, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        maps.append(torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(a.head_dim), dim=-1).detach())
    return maps


def test_grid_of_the_tiny_vit_is_its_token_grid_in_row_major_order(tiny_vit):
    grid = patch_grid(tiny_vit, (28, 28))
    assert (grid.rows, grid.cols, grid.patch_h, grid.patch_w, grid.prefix_tokens, grid.tokens) == (4, 4, 7, 7, 1, True)
    owner = grid.patch_of_pixel()
    assert owner[0, 0] == 0 and owner[7, 14] == 6 and owner[27, 27] == 15 and owner[6, 27] == 3
    assert grid.pixels_per_patch().tolist() == [49] * 16
    keep = torch.zeros(1, 16, dtype=torch.bool)
    keep[0, 6] = True
    pix = grid.pixel_keep(keep)[0, 0]
    assert pix.sum() == 49 and pix[7:14, 14:21].all()


def test_a_cnn_gets_a_7x7_grid_and_pixels_beyond_the_last_cell_join_it():
    grid = patch_grid(nn.Conv2d(1, 1, 3), (30, 30))
    assert (grid.rows, grid.cols, grid.patch_h, grid.prefix_tokens, grid.tokens) == (7, 7, 4, 0, False)
    assert grid.patch_of_pixel()[29, 29] == 48 and grid.pixels_per_patch()[48] == 6 * 6


@pytest.mark.parametrize("scorer", list(SCORERS))
def test_every_scorer_gives_one_finite_score_per_patch_and_leaves_the_model_alone(tiny_vit, tiny_data, scorer):
    before = {k: v.clone() for k, v in tiny_vit.state_dict().items()}
    fused = [m.fused_attn for m in attention_modules(tiny_vit)]
    scores = score_patches(tiny_vit, model_input(tiny_vit, tiny_data), scorer, ScoreOptions(ig_steps=4))
    assert scores.shape == (6, 16) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert [m.fused_attn for m in attention_modules(tiny_vit)] == fused == [True, True]
    assert not tiny_vit.training
    assert all(torch.equal(before[k], v) for k, v in tiny_vit.state_dict().items())
    assert all(p.grad is None for p in tiny_vit.parameters())


def test_attention_maps_come_from_timm_and_equal_a_direct_computation(tiny_vit, tiny_data):
    x = model_input(tiny_vit, tiny_data)
    maps, direct = attention_maps(tiny_vit, x), direct_attention(tiny_vit, x)
    assert len(maps) == 2 and maps[0].shape == (6, 2, 17, 17)
    for a, b in zip(maps, direct):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_attention_maps_leave_the_shared_model_untouched_and_follow_its_weights(tiny_vit, tiny_data):
    from lotus_core.patches.attention import private_copy

    x = model_input(tiny_vit, tiny_data)
    tiny_vit.blocks[1].attn.fused_attn = False  # a module's own value stays what it was
    hooks = [len(m._forward_hooks) for m in tiny_vit.modules()]
    attention_maps(tiny_vit, x)
    assert [m.fused_attn for m in attention_modules(tiny_vit)] == [True, False]
    assert [len(m._forward_hooks) for m in tiny_vit.modules()] == hooks and not tiny_vit.training
    with torch.no_grad():
        tiny_vit.blocks[0].attn.qkv.weight.mul_(2)  # weights changed in place: the copy shares them
    torch.testing.assert_close(attention_maps(tiny_vit, x)[0], direct_attention(tiny_vit, x)[0], atol=1e-6, rtol=1e-5)
    twin = private_copy(tiny_vit)
    assert twin.blocks[0].attn is not tiny_vit.blocks[0].attn
    assert [p.data_ptr() for p in twin.parameters()] == [p.data_ptr() for p in tiny_vit.parameters()]
    twin.train()
    assert not tiny_vit.training and not tiny_vit.blocks[0].attn.training


def test_fused_attention_is_untouched_even_when_scoring_fails(tiny_vit, tiny_data):
    tiny_vit.blocks[1].attn.fused_attn = False
    with pytest.raises(LotusError, match="block 5 does not exist; the model has 2 blocks"):
        score_patches(tiny_vit, model_input(tiny_vit, tiny_data), "cls", ScoreOptions(block=5))
    assert [m.fused_attn for m in attention_modules(tiny_vit)] == [True, False]


@pytest.mark.parametrize("block,fuse", [(-1, "mean"), (0, "max")])
def test_cls_scores_are_the_cls_row_of_one_block(tiny_vit, tiny_data, block, fuse):
    x = model_input(tiny_vit, tiny_data)
    a = direct_attention(tiny_vit, x)[block]
    expected = a.mean(dim=1) if fuse == "mean" else a.amax(dim=1)
    scores = score_patches(tiny_vit, x, "cls", ScoreOptions(block=block, fuse=fuse))
    torch.testing.assert_close(scores, expected[:, 0, 1:], atol=1e-6, rtol=1e-5)


def numpy_rollout(maps, fuse, discard_ratio):
    """Attention rollout written out with numpy loops, straight from Abnar & Zuidema (2020)."""
    maps = [m.double().numpy() for m in maps]
    b, _, n, _ = maps[0].shape
    out = np.zeros((b, n - 1))
    for i in range(b):
        joint = np.eye(n)
        for m in maps:
            a = {"mean": m[i].mean(0), "max": m[i].max(0), "min": m[i].min(0)}[fuse].copy()
            k = min(int(np.floor(discard_ratio * n)), n - 2)
            for r in range(n):
                candidates = [c for c in range(n) if c != 0 and c != r]
                for c in sorted(candidates, key=lambda c: a[r, c])[:k]:
                    a[r, c] = 0.0
            a = a + np.eye(n)
            a = a / a.sum(axis=1, keepdims=True)
            joint = a @ joint
        out[i] = joint[0, 1:]
    return torch.from_numpy(out).float()


@pytest.mark.parametrize("fuse,discard", [("mean", 0.0), ("max", 0.5), ("min", 0.9)])
def test_rollout_equals_the_direct_matrix_product(tiny_vit, tiny_data, fuse, discard):
    x = model_input(tiny_vit, tiny_data, n=3)
    expected = numpy_rollout(direct_attention(tiny_vit, x), fuse, discard)
    scores = score_patches(tiny_vit, x, "rollout", ScoreOptions(fuse=fuse, discard_ratio=discard))
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-4)


def test_captum_ablation_score_is_the_logit_drop_when_the_patch_is_filled(tiny_vit, tiny_data):
    x = model_input(tiny_vit, tiny_data, n=2)
    fill = torch.tensor([0.3])
    scores = score_patches(tiny_vit, x, "captum-ablation", fill=fill)
    grid = patch_grid(tiny_vit, (28, 28))
    with torch.no_grad():
        logits = tiny_vit(x)
        pred = logits.argmax(dim=1)
        for p in (0, 5, 15):
            keep = torch.ones(2, 16, dtype=torch.bool)
            keep[:, p] = False
            filled = tiny_vit(mask_pixels(x, keep, grid, fill))
            drop = logits[torch.arange(2), pred] - filled[torch.arange(2), pred]
            torch.testing.assert_close(scores[:, p], drop, atol=1e-5, rtol=1e-4)


def test_captum_ig_on_a_linear_model_is_the_exact_integral():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x, fill = torch.randn(3, 1, 28, 28), torch.tensor([0.25])
    scores = score_patches(model, x, "captum-ig", ScoreOptions(ig_steps=3), fill=fill)
    pred = model(x).argmax(dim=1)
    w = model[1].weight[pred].view(3, 1, 28, 28)
    exact = ((x - fill) * w).abs().detach()  # IG of a linear function, for any number of steps
    grid = patch_grid(model, (28, 28))
    torch.testing.assert_close(scores, grid.patch_sum(exact), atol=1e-4, rtol=1e-4)


def test_random_scores_depend_on_the_seed_and_image_id_only(tiny_vit, tiny_data):
    x = model_input(tiny_vit, tiny_data, n=3)
    both = score_patches(tiny_vit, x[:2], "random", ids=torch.tensor([3, 5]))
    alone = score_patches(tiny_vit, x[2:], "random", ids=torch.tensor([5]))
    assert torch.equal(both[1], alone[0]) and not torch.equal(both[0], both[1])
    other = score_patches(tiny_vit, x[2:], "random", ScoreOptions(seed=1), ids=torch.tensor([5]))
    assert not torch.equal(other, alone)


def test_attention_scorers_refuse_a_model_without_attention_and_the_others_work():
    cnn = timm.create_model("test_resnet", pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 28, 28)
    for name in ("cls", "rollout"):
        with pytest.raises(LotusError, match="ResNet has no attention blocks; use the captum-ablation"):
            score_patches(cnn, x, name)
    assert score_patches(cnn, x, "captum-ablation").shape == (2, 49)
    with pytest.raises(LotusError, match="token dropping needs a timm VisionTransformer"):
        drop_tokens(cnn, x, torch.ones(2, 49, dtype=torch.bool))


def test_a_vit_with_registers_scores_patch_tokens_only():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=28, patch_size=7, in_chans=1,
                            num_classes=10, embed_dim=16, depth=2, num_heads=2, reg_tokens=2).eval()
    x = torch.randn(2, 1, 28, 28)
    assert patch_grid(vit, (28, 28)).prefix_tokens == 3
    maps = direct_attention(vit, x)
    torch.testing.assert_close(score_patches(vit, x, "cls"), maps[-1].mean(1)[:, 0, 3:], atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(drop_tokens(vit, x, torch.ones(2, 16, dtype=torch.bool)), vit(x), atol=1e-6, rtol=0)


def test_drop_count_rounds_half_up_and_keeps_at_least_one_patch():
    assert [drop_count(49, d) for d in (0.0, 0.1, 0.25, 0.5, 0.9)] == [0, 5, 12, 25, 44]
    assert drop_count(16, 0.1) == 2 and drop_count(16, 0.99) == 15 and drop_count(10, 0.05) == 1
    for bad in (1.0, -0.1, 10):
        with pytest.raises(LotusError, match=r"outside \[0, 1\)"):
            drop_count(49, bad)


def test_selection_keeps_the_top_scores_and_breaks_ties_by_patch_index():
    assert select_patches(torch.ones(1, 49), 0.1)[0].tolist() == [True] * 44 + [False] * 5
    scores = torch.rand(20, 49, generator=torch.Generator().manual_seed(0))
    keep = select_patches(scores, 0.25)
    assert keep.sum(dim=1).tolist() == [37] * 20
    for s, k in zip(scores, keep):
        assert s[k].min() > s[~k].max()
    assert patch_ranks(torch.tensor([[0.5, 0.9, 0.5, 0.1]])).tolist() == [[1, 0, 2, 3]]
    assert select_patches(scores, 0.0).all()
    with pytest.raises(LotusError, match="NaN"):
        select_patches(torch.tensor([[0.1, float("nan")]]), 0.5)


def test_fill_value_is_the_normalised_dataset_mean_in_the_models_channels(tiny_vit):
    data = make_tiny_imageset(50)
    cfg = data_config(tiny_vit)
    mean = data.images.float().mean() / 255
    torch.testing.assert_close(fill_value(data, cfg), ((mean - cfg["mean"][0]) / cfg["std"][0]).view(1))
    rgb = {"input_size": (3, 28, 28), "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.1)}
    expected = torch.stack([(mean - m) / s for m, s in zip(rgb["mean"], rgb["std"])])
    torch.testing.assert_close(fill_value(data, rgb), expected)


def test_pixel_masking_fills_exactly_the_dropped_patches(tiny_vit, tiny_data):
    x = model_input(tiny_vit, tiny_data, n=2)
    grid = patch_grid(tiny_vit, (28, 28))
    keep = torch.ones(2, 16, dtype=torch.bool)
    keep[0, 5] = keep[1, 15] = False
    out = mask_pixels(x, keep, grid, torch.tensor([-7.0]))
    assert (out[0, 0, 7:14, 7:14] == -7).all() and (out[1, 0, 21:, 21:] == -7).all()
    assert (out == -7).sum() == 2 * 49 and torch.equal(out[x != out], torch.full((98,), -7.0))


def test_token_dropping_at_zero_drop_is_the_ordinary_forward(tiny_vit, tiny_data):
    x = model_input(tiny_vit, tiny_data)
    with torch.no_grad():
        torch.testing.assert_close(drop_tokens(tiny_vit, x, torch.ones(6, 16, dtype=torch.bool)), tiny_vit(x),
                                   atol=1e-6, rtol=0)


def test_token_dropping_runs_on_fewer_tokens_and_equals_pixel_masking_with_masked_attention(tiny_vit, tiny_data):
    """Where the two must agree: token dropping is pixel masking whose dropped tokens no query may
    attend to (the CLS output cannot depend on them), and never sees the dropped pixels at all."""
    x = model_input(tiny_vit, tiny_data)
    grid = patch_grid(tiny_vit, (28, 28))
    keep = select_patches(score_patches(tiny_vit, x, "random"), 0.25)  # 4 of 16 dropped
    seen = []
    hook = tiny_vit.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    with torch.no_grad():
        dropped = drop_tokens(tiny_vit, x, keep)
        hook.remove()
        noisy = torch.where(grid.pixel_keep(keep), x, torch.randn_like(x) * 5)
        assert seen == [1 + 12]
        torch.testing.assert_close(drop_tokens(tiny_vit, noisy, keep), dropped, atol=1e-6, rtol=0)
        masked = mask_pixels(x, keep, grid, torch.tensor([0.2]))
        attend = torch.cat([torch.ones(6, 1, dtype=torch.bool), keep], dim=1)  # (B, N) keys that may be attended
        attn_mask = attend[:, None, None, :].expand(-1, 1, 17, -1)
        reference = tiny_vit.forward_head(tiny_vit.forward_features(masked, attn_mask=attn_mask))
        torch.testing.assert_close(dropped, reference, atol=1e-5, rtol=0)
        assert not torch.allclose(dropped, tiny_vit(masked), atol=1e-3)  # plain pixel masking does differ


def test_score_images_batches_like_one_call(tiny_vit, tiny_data):
    cfg = data_config(tiny_vit)
    whole = score_patches(tiny_vit, to_model_input(tiny_data.images[:10], cfg), "rollout")
    torch.testing.assert_close(score_images(tiny_vit, tiny_data.images[:10], cfg, "rollout", batch_size=3), whole,
                               atol=1e-6, rtol=1e-5)
