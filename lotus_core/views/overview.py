"""Small read-outs for the Overview page and the report."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..context import Context
from ..training.evaluate import predict


@dataclass
class Prediction:
    index: int  # index into the test split
    label: str
    prediction: str

    @property
    def correct(self) -> bool:
        return self.label == self.prediction


def sample_predictions(ctx: Context, n: int = 16, seed: int = 0) -> list[Prediction]:
    """The base model's predictions on ``n`` test images drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ctx.test), generator=g)[:n]
    preds = predict(ctx.model, ctx.test.images[idx], ctx.data_config)
    names = ctx.test.classes
    return [Prediction(int(i), names[int(ctx.test.labels[i])], class_name(names, int(p))) for i, p in zip(idx, preds)]


def class_name(classes: list[str], output: int) -> str:
    """The class an output unit stands for; a head with more outputs than the dataset has classes (not
    fine-tuned to it) predicts units that name none: ``"output 7 (no class)"``."""
    return classes[output] if 0 <= output < len(classes) else f"output {output} (no class)"
