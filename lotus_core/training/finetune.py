"""Fine-tuning with a mask: the Essential Sparsity protocol is "prune the pre-trained weights,
then fine-tune". Pruned weights stay exactly zero throughout (see :func:`lotus_core.training.train.train`).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..data import ImageSet
from ..pruning.mask import Mask
from .train import TrainConfig, TrainProgress, TrainResult, train


def finetune(model: nn.Module, mask: Mask, train_set: ImageSet, data_config: dict, steps: int, lr: float = 1e-4,
             batch_size: int = 128, seed: int = 0, on_progress: Callable[[TrainProgress], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             on_step: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """Fine-tune ``model`` in place for ``steps`` AdamW steps with ``mask`` held fixed.

    Args:
        lr: peak learning rate (cosine decay, no warm-up); fine-tuning uses a small one.
        seed: batch order.
        on_step: called after every optimizer step with the step count (1-based) and the model.
    """
    mask.validate(model)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.0, seed=seed)
    return train(model, train_set, cfg, data_config, mask=mask, on_progress=on_progress, should_stop=should_stop,
                 on_step=on_step)
