import copy

import torch

from lotus_core.models.arch import data_config
from lotus_core.patches.ticket_training import LotteryTrainConfig
from lotus_core.training.train import TrainConfig, augment_batch, train, weight_decay_groups
from tests.conftest import make_tiny_imageset, make_tiny_vit


def test_training_is_reproducible_from_a_seed_and_learns_the_tiny_task():
    data = make_tiny_imageset(400, seed=1, split="train")
    test = make_tiny_imageset(200, seed=2)
    cfg = TrainConfig(steps=300, batch_size=32, lr=3e-3, seed=7, warmup_steps=10, weight_decay=0.0)
    a, b = make_tiny_vit(0), make_tiny_vit(0)
    train(a, data, cfg, data_config(a))
    train(b, data, cfg, data_config(b))
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n
    from lotus_core.training.evaluate import evaluate

    before = evaluate(make_tiny_vit(0), test, data_config(a), limit=None, bf16=False).accuracy
    after = evaluate(a, test, data_config(a), limit=None, bf16=False).accuracy
    assert before <= 0.2 and after >= 0.9, (before, after)
    assert not a.training


def test_masked_training_keeps_pruned_weights_exactly_zero():
    model = make_tiny_vit(0)
    w = model.blocks[0].mlp.fc1.weight
    keep = torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    start = copy.deepcopy(w.detach())
    train(model, make_tiny_imageset(128, seed=1), TrainConfig(steps=10, batch_size=32, lr=1e-2),
          data_config(model), mask={"blocks.0.mlp.fc1.weight": keep})
    assert torch.count_nonzero(w[~keep]) == 0
    assert not torch.equal(w[keep], start[keep])


def test_augment_batch_shifts_and_flips_within_two_pixels():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    mass = y.sum(dim=(1, 2, 3))
    assert torch.allclose(mass, torch.full_like(mass, 64.0), atol=1e-3)  # the block never leaves the frame
    assert not torch.equal(y, x)


def test_weight_decay_spares_norms_biases_and_embeddings(tiny_vit):
    """timm's no_weight_decay() convention: only weight matrices decay (every 1-D tensor, bias, pos_embed and
    cls_token are in the zero-decay group); the recipe is part of every trained run's key."""
    names = {id(p): n for n, p in tiny_vit.named_parameters()}
    groups = {g["weight_decay"]: sorted(names[id(p)] for p in g["params"])
              for g in weight_decay_groups(tiny_vit, 0.05)}
    params = dict(tiny_vit.named_parameters())
    spared = sorted(n for n, p in params.items() if p.ndim <= 1 or n in ("pos_embed", "cls_token"))
    assert groups[0.0] == spared and "pos_embed" in spared and "blocks.0.norm1.weight" in spared
    assert groups[0.05] == sorted(set(params) - set(spared)) and "blocks.0.attn.qkv.weight" in groups[0.05]
    everything = weight_decay_groups(tiny_vit, 0.05, exclude=False)
    assert [(g["weight_decay"], len(g["params"])) for g in everything] == [(0.05, len(params))]
    assert [g["weight_decay"] for g in weight_decay_groups(tiny_vit, 0.0)] == [0.0]  # no decay: one group
    assert LotteryTrainConfig().exclude_from_decay and TrainConfig().exclude_from_decay


def test_a_layernorm_with_zero_gradient_moves_only_when_it_is_decayed():
    """Logits that depend on the weights only through ``* 0`` give every weight a zero gradient, so one
    AdamW step changes a weight only by its decay: LayerNorm stays exactly put under the timm recipe."""
    data = make_tiny_imageset(64, seed=1, split="train")
    norm, qkv = "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight"
    after = {}
    for exclude in (True, False):
        model = make_tiny_vit(0)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        train(model, data, TrainConfig(steps=1, batch_size=16, lr=0.1, weight_decay=0.5, exclude_from_decay=exclude,
                                       seed=0, bf16=False), data_config(model),
              forward=lambda m, x, batch: m(x) * 0 + m.head.bias)
        after[exclude] = {n: p.detach() for n, p in model.named_parameters()}
    assert torch.equal(after[True][norm], before[norm])  # spared: unchanged
    assert torch.allclose(after[False][norm], before[norm] * (1 - 0.1 * 0.5))  # decayed once
    assert torch.allclose(after[True][qkv], before[qkv] * (1 - 0.1 * 0.5))  # matrices decay either way
