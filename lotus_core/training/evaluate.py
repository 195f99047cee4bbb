"""Top-1 accuracy on a fixed, seeded test subset, with a 95% confidence interval.

Accuracies are fractions in [0, 1]. The interval is Wilson's score interval for a binomial
proportion, which stays inside [0, 1] and behaves at accuracies near 0 or 1.

:func:`decide` answers a yes/no question about the same subset ("are at least ``required`` of
the ``n`` images right?") from its first images only: after ``k`` images with ``c`` correct,
"yes" is certain once c >= required and "no" once c + (n - k) < required. It is the answer
full evaluation gives, at a fraction of its cost far from the threshold; this is what the
turning-point search of :mod:`lotus_core.pruning.sweep` asks at every sparsity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from ..data.images import ImageSet, subset_indices, to_model_input
from ..core.device import autocast, decision_batch_size, eval_batch_size, model_device

DEFAULT_LIMIT = 2000
MIN_BATCH = 50  # the fewest images an early decision evaluates at a time (fewer only at the end of the subset)


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
    margins: torch.Tensor | None = field(default=None, repr=False)  # (n,) with ``margins=True``: see :func:`margin`

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


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: the true class's logit minus the highest other logit (negative: misclassified)."""
    true = logits.gather(1, labels[:, None].to(logits.device))[:, 0]
    others = logits.scatter(1, labels[:, None].to(logits.device), float("-inf"))
    return (true - others.max(dim=1).values).float().cpu()


def hard_first(margins: torch.Tensor) -> list[int]:
    """Subset positions ordered from the most confidently wrong image to the most confidently right one
    (ascending :func:`margin`, ties by position): the images most likely to be wrong at a pruned model come first."""
    return torch.sort(margins, stable=True).indices.tolist()


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, data_config: dict, batch_size: int | None = None,
            bf16: bool = True, transform: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
            forward: Callable[[nn.Module, torch.Tensor, int], torch.Tensor] | None = None,
            labels: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Predicted labels (on the CPU) for uint8 ``images`` (B, C, H, W), computed where ``model`` is; with
    ``labels``, the predictions and each image's :func:`margin`.

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
    out, margins = [], []
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
        if labels is not None:
            margins.append(margin(logits, labels[start: start + batch_size]))
    preds = torch.cat(out) if out else torch.empty(0, dtype=torch.int64)
    if labels is None:
        return preds
    return preds, (torch.cat(margins) if margins else torch.empty(0))


def evaluate(model: nn.Module, data: ImageSet, data_config: dict, limit: int | None = DEFAULT_LIMIT,
             seed: int = 0, batch_size: int | None = None, bf16: bool = True, margins: bool = False) -> EvalResult:
    """Top-1 accuracy of ``model`` (where it is; it is not moved) on a fixed subset of ``limit`` images of ``data``.

    Args:
        limit: number of test images (None = all); the subset depends only on ``seed`` and
            the dataset size, so every method is compared on the same images.
        bf16: use bf16 autocast where it is fast (see :mod:`lotus_core.core.device`).
        margins: also each image's :func:`margin` (``EvalResult.margins``), from the same forward.
    """
    idx = subset_indices(len(data), limit, seed)
    labels = data.labels[idx]
    preds = predict(model, data.images[idx], data_config, batch_size, bf16, labels=labels if margins else None)
    preds, margin_values = preds if margins else (preds, None)
    hit = preds == labels
    correct = int(hit.sum())
    per_class = {}
    for c, name in enumerate(data.classes):
        sel = labels == c
        if int(sel.sum()):
            per_class[name] = float(hit[sel].float().mean())
    n = len(idx)
    return EvalResult(correct / n if n else 0.0, n, correct, wilson_interval(correct, n), per_class, preds, idx,
                      margin_values)


@dataclass(frozen=True)
class Decision:
    """Whether at least ``required`` of the ``n`` subset images are classified correctly, decided
    from the first ``seen`` of them (in subset order); ``seen < n`` means it was decided early.
    ``above`` is None only for a decision given a budget of images that did not settle it (see
    :func:`decide_in_batches`): then it is open, and [low, high] straddles the threshold."""

    above: bool | None  # at least `required` correct on the whole subset (certain, not estimated); None: still open
    correct: int  # correct among the first `seen` images
    seen: int  # images evaluated
    n: int  # images in the subset
    required: int  # the threshold, a number of correct images

    @property
    def early(self) -> bool:
        return self.seen < self.n

    @property
    def bounds(self) -> tuple[float, float]:
        """The whole subset's accuracy lies in [low, high] (fractions; equal when not early)."""
        return self.correct / self.n, (self.correct + self.n - self.seen) / self.n


def decision(correct: int, seen: int, n: int, required: int) -> bool | None:
    """True when at least ``required`` of ``n`` are certainly correct after ``correct`` of the first
    ``seen``, False when that is certainly impossible, None while it is open."""
    if correct >= required:
        return True
    if correct + (n - seen) < required:
        return False
    return None


def images_to_decide(correct: int, seen: int, n: int, required: int) -> int:
    """The fewest further images after which :func:`decision` can be certain (0: it already is):
    all of them right for "above", all of them wrong for "below"."""
    if decision(correct, seen, n, required) is not None:
        return 0
    return min(required - correct, correct + (n - seen) - required + 1)


def decide_in_batches(count_correct: Callable[[int, int], int], n: int, required: int, batch_size: int = 500,
                      min_batch: int = MIN_BATCH, budget: int | None = None,
                      start: Decision | None = None) -> Decision:
    """The :class:`Decision` for ``required`` of ``n``, with ``count_correct(start, stop)`` the number
    of correct images among subset positions [start, stop), asked in order until it is certain.

    Each batch is the fewest images that could decide (:func:`images_to_decide`), at least
    ``min_batch`` (fewer only at the end) and at most ``batch_size``: it never stops before the
    decision is certain and never goes more than ``min_batch - 1`` images past where it became so.

    ``budget``: stop after that many images even when the decision is still open (``above`` None; the
    scouted search's cheap first look). ``start``: go on from an earlier, open decision of the same
    images in the same order, counting only the images after its ``seen``.
    """
    correct, seen = (start.correct, start.seen) if start is not None else (0, 0)
    end = n if budget is None else min(n, budget)
    while decision(correct, seen, n, required) is None and seen < end:
        stop = min(end, seen + min(batch_size, max(min_batch, images_to_decide(correct, seen, n, required))))
        correct += count_correct(seen, stop)
        seen = stop
    return Decision(decision(correct, seen, n, required), correct, seen, n, required)


def decide(model: nn.Module, data: ImageSet, data_config: dict, required: int, limit: int | None = DEFAULT_LIMIT,
           seed: int = 0, batch_size: int | None = None, min_batch: int = MIN_BATCH, bf16: bool = True,
           order: Sequence[int] | None = None, budget: int | None = None,
           start: Decision | None = None) -> Decision:
    """Are at least ``required`` of the fixed ``limit``-image subset (the one :func:`evaluate` uses)
    classified correctly? Evaluated in batches, stopping as soon as the answer is certain.

    ``order`` (a permutation of the subset's positions; default: subset order) is the order in which
    the images are taken: the answer does not depend on it, only how soon it is certain. With
    :func:`hard_first` of the dense model, a point below the threshold is decided after little more
    than the ``n - required + 1`` wrong images it needs.

    The answer is the one full evaluation gives (``evaluate(...).correct >= required``): the
    images are the same and the prediction of an image does not depend on the batch it is in
    (``decision`` only counts). ``min_batch`` trades a few surplus images for fewer, larger batches;
    ``batch_size`` (the largest batch) defaults to :func:`~lotus_core.core.device.decision_batch_size`.
    ``budget`` and ``start`` are :func:`decide_in_batches`'s: stop open after ``budget`` images, go on from
    an open decision.
    """
    batch_size = batch_size or decision_batch_size(model_device(model), data_config["input_size"])
    idx = subset_indices(len(data), limit, seed)
    if order is not None:
        if sorted(order) != list(range(len(idx))):
            raise ValueError(f"order must be a permutation of the {len(idx)} subset positions")
        idx = idx[torch.as_tensor(list(order), dtype=torch.long)]
    labels = data.labels[idx]

    def count_correct(first: int, stop: int) -> int:
        preds = predict(model, data.images[idx[first:stop]], data_config, batch_size, bf16)
        return int((preds == labels[first:stop]).sum())

    return decide_in_batches(count_correct, len(idx), required, batch_size, min_batch, budget, start)
