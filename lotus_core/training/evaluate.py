"""Top-1 accuracy on a fixed, seeded test subset, with a 95% confidence interval.

Accuracies are fractions in [0, 1]. The interval is Wilson's score interval for a binomial
proportion, which stays inside [0, 1] and behaves at accuracies near 0 or 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..data import ImageSet, subset_indices, to_model_input
from ..core.device import autocast, eval_batch_size, model_device
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment

DEFAULT_LIMIT = 2000


@dataclass
class EvalResult:
    """Result of :func:`evaluate`. ``accuracy`` and ``ci95`` are fractions in [0, 1]."""

    accuracy: float
    n: int
    correct: int
    ci95: tuple[float, float]
    per_class: dict[str, float]
    predictions: torch.Tensor = field(repr=False)  # (n,) predicted labels, in subset order
    indices: torch.Tensor = field(repr=False)  # (n,) dataset indices evaluated

    def summary(self) -> dict:
        """JSON-ready headline numbers."""
        return {"accuracy": self.accuracy, "n": self.n, "correct": self.correct, "ci95": list(self.ci95),
                "per_class": self.per_class}


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for ``correct`` successes out of ``n``."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, data_config: dict, batch_size: int | None = None,
            bf16: bool = True, transform: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
            forward: Callable[[nn.Module, torch.Tensor, int], torch.Tensor] | None = None) -> torch.Tensor:
    """Predicted labels (on the CPU) for uint8 ``images`` (B, C, H, W), computed where ``model`` is.

    The model is neither moved nor switched to eval mode (the Context placed it once, in eval
    mode; a model in train mode is refused, since dropout would make predictions random).
    ``batch_size`` defaults to one sized to the device (:func:`~lotus_core.core.device.eval_batch_size`).
    ``transform(model_input, start)`` may alter each normalised batch (``start`` is the
    batch's offset into ``images``), e.g. to mask patches; ``forward(model, model_input, start)``
    replaces ``model(model_input)``, e.g. to compute on the kept patch tokens only.
    """
    device = model_device(model)
    if model.training:
        raise ValueError("predict() needs a model in eval mode; call model.eval() on your copy first")
    batch_size = batch_size or eval_batch_size(device, data_config["input_size"])
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start: start + batch_size]
        if device.type == "cuda":  # uint8 over a pinned buffer: a quarter of the float bytes, asynchronous
            chunk = chunk.pin_memory().to(device, non_blocking=True)
        x = to_model_input(chunk, data_config)
        if transform is not None:
            x = transform(x, start)
        x = x.to(device)
        with autocast(device, bf16):
            logits = model(x) if forward is None else forward(model, x, start)
        out.append(logits.argmax(dim=-1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def evaluate(model: nn.Module, data: ImageSet, data_config: dict, limit: int | None = DEFAULT_LIMIT,
             seed: int = 0, batch_size: int | None = None, bf16: bool = True) -> EvalResult:
    """Top-1 accuracy of ``model`` (where it is; it is not moved) on a fixed subset of ``limit`` images of ``data``.

    Args:
        limit: number of test images (None = all); the subset depends only on ``seed`` and
            the dataset size, so every method is compared on the same images.
        bf16: use bf16 autocast where it is fast (see :mod:`lotus_core.core.device`).
    """
    idx = subset_indices(len(data), limit, seed)
    preds = predict(model, data.images[idx], data_config, batch_size, bf16)
    labels = data.labels[idx]
    hit = preds == labels
    correct = int(hit.sum())
    per_class = {}
    for c, name in enumerate(data.classes):
        sel = labels == c
        if int(sel.sum()):
            per_class[name] = float(hit[sel].float().mean())
    n = len(idx)
    return EvalResult(correct / n if n else 0.0, n, correct, wilson_interval(correct, n), per_class, preds, idx)


def evaluate_headline(s: dict) -> Headline:
    """Headline of a stored dense evaluation."""
    return Headline(s["accuracy"], 0.0, f"dense accuracy {pct(s['accuracy'])} on {s['n']:,} images")


register_experiment(ExperimentSpec("evaluate", headline=evaluate_headline))  # Context.dense_accuracy stores it
