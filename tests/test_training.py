import copy

import torch

from lotus_core.models.loading import data_config
from lotus_core.training.train import TrainConfig, augment_batch, train
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
