"""The accuracy of each measured speed variant: its own forward on the fixed seeded test subset (fp32), with its
95% Wilson interval, stored as kind ``speed-accuracy`` and shared by every speed run with the same model, data and
setting (the timing changes between machines, the accuracy does not); a structurally pruned variant also after
``finetune_steps`` steps of the training loop."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from ..context import Context
from ..core.isolation import seeded
from ..data.images import subset_indices
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run, run_experiment
from ..training.evaluate import predict, wilson_interval
from ..training.train import TrainConfig, train
from . import METHODS
from .variants import Variant

if TYPE_CHECKING:  # run.py imports this module
    from .run import SpeedConfig


def _score(ctx: Context, model: torch.nn.Module, forward, config: SpeedConfig, device: torch.device) -> dict:
    """Top-1 accuracy of ``forward`` on the fixed test subset (fp32), with its 95% Wilson interval."""
    idx = subset_indices(len(ctx.test), config.limit, config.seed)
    with seeded(config.seed):  # patch dropout draws from torch's global generator (timm's PatchDropout)
        preds = predict(model.to(device).eval(), ctx.test.images[idx], ctx.data_config, bf16=False,
                        forward=lambda m, x, start: forward(x))
    correct = int((preds == ctx.test.labels[idx]).sum())
    return {"accuracy": correct / len(idx), "n": len(idx), "ci95": list(wilson_interval(correct, len(idx)))}


def _accuracy_params(method: str, value: float, config: SpeedConfig, device: torch.device, **extra) -> dict:
    """What keys one stored accuracy (kind speed-accuracy; the model and dataset are added by the store's key)."""
    if METHODS[method].family == "structural":
        extra["importance"] = config.importance
    if method == "evit":
        extra["fuse"] = config.fuse
    return {"method": method, "value": round(value, 6), "limit": config.limit, "seed": config.seed,
            "device": device.type, **extra}


def accuracy(ctx: Context, variant: Variant, config: SpeedConfig, device: torch.device) -> dict:
    """Accuracy of ``variant``'s forward on the test subset, stored (kind speed-accuracy)."""
    method, value = variant.accuracy_of or (variant.method, variant.value)
    return run_experiment(ctx, "speed-accuracy", _accuracy_params(method, value, config, device),
                          lambda c, _, run: _score(ctx, variant.model, variant.forward, config, device))


def finetuned_accuracy(ctx: Context, variant: Variant, config: SpeedConfig, device: torch.device) -> float:
    """Accuracy of a structurally pruned variant after ``config.finetune_steps`` steps of the training loop (stored)."""
    def compute(c: Context, _, run: Run) -> dict:
        model = copy.deepcopy(variant.trainable).to(device)  # trained where it sits
        train(model, ctx.train, TrainConfig(steps=config.finetune_steps, batch_size=64, lr=config.finetune_lr,
                                            weight_decay=0.0, seed=config.seed), ctx.data_config)
        return _score(ctx, model, model, config, device)

    params = _accuracy_params(variant.method, variant.value, config, device, finetune_steps=config.finetune_steps,
                              finetune_lr=config.finetune_lr)
    return run_experiment(ctx, "speed-accuracy", params, compute)["accuracy"]


register_experiment(ExperimentSpec("speed-accuracy", headline=lambda s: Headline(
    s["accuracy"], None, f"accuracy {pct(s['accuracy'])} of {s['n']:,}")))  # accuracy() stores it
