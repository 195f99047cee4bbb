import copy

import pytest
import torch

from lotus_core.core.errors import LotusError
from lotus_core.training.finetune import finetune
from lotus_core.pruning import Mask, prune, scoped_parameters


def test_finetuning_keeps_pruned_weights_at_zero_and_moves_the_rest(tiny_ctx):
    mask = prune(tiny_ctx.model, "omp", 0.6)
    model = mask.apply(tiny_ctx.model)
    start = {n: p.detach().clone() for n, p in scoped_parameters(model).items()}
    seen = []
    result = finetune(model, mask, tiny_ctx.train, tiny_ctx.data_config, steps=20, lr=1e-2, batch_size=32,
                      on_progress=seen.append)
    assert result.steps == 20 and seen[-1].step == 20
    for name, p in scoped_parameters(model).items():
        keep = mask[name]
        assert torch.count_nonzero(p[~keep]) == 0, name
        assert not torch.equal(p[keep], start[name][keep]), name
    assert mask.sparsity == pytest.approx(round(0.6 * mask.numel()) / mask.numel())
    # the base model is untouched
    assert torch.count_nonzero(scoped_parameters(tiny_ctx.model)["blocks.0.mlp.fc1.weight"]) == \
        mask["blocks.0.mlp.fc1.weight"].numel()


def test_finetuning_with_a_mask_for_another_model_is_refused(tiny_ctx):
    bad = Mask({"blocks.0.mlp.fc1.weight": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(LotusError, match="has shape \\(2, 2\\)"):
        finetune(copy.deepcopy(tiny_ctx.model), bad, tiny_ctx.train, tiny_ctx.data_config, steps=1)
