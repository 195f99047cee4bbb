"""A Context bundles what every analysis needs: the base model, its input config, the
datasets and the results store. The CLI and the dashboard both open one; analyses take it
as their first argument.

The base model is shared (and cached by the dashboard): never modify it; prune or train
a copy (:meth:`Context.copy_model`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..data import ImageSet, load_dataset
from ..training.evaluate import DEFAULT_LIMIT, EvalResult, evaluate
from ..models.loading import data_config, load_model
from ..results.store import Store


@dataclass
class Context:
    """Model + data + store for one analysis session.

    Attributes:
        model: the base model in eval mode (never mutated).
        model_id: ``model.lotus_id``, e.g. ``"default@3f2a..."``; part of every result key.
        dataset: dataset name, e.g. ``"fashion-mnist"``.
        data_config: the model's input config (input_size, mean, std).
        test: the test split.
        store: the results store.
    """

    model: nn.Module
    model_id: str
    dataset: str
    data_config: dict
    test: ImageSet
    store: Store
    data_root: Path | None = None
    _train: ImageSet | None = field(default=None, repr=False)

    @property
    def train(self) -> ImageSet:
        """The training split, loaded on first use."""
        if self._train is None:
            self._train = load_dataset(self.dataset, "train", self.data_root)
        return self._train

    def key(self, **extra: Any) -> dict:
        """The base of every experiment config: model id and dataset, plus ``extra``."""
        return {"model": self.model_id, "dataset": self.dataset, **extra}

    def copy_model(self) -> nn.Module:
        """A deep copy of the base model, safe to prune or train."""
        return copy.deepcopy(self.model)

    def evaluate(self, model: nn.Module | None = None, limit: int | None = DEFAULT_LIMIT, seed: int = 0,
                 bf16: bool = True) -> EvalResult:
        """Accuracy of ``model`` (default: the base model) on the fixed test subset."""
        return evaluate(model if model is not None else self.model, self.test, self.data_config, limit=limit, seed=seed,
                        bf16=bf16)

    def dense_key(self, limit: int | None = DEFAULT_LIMIT, seed: int = 0, bf16: bool = True) -> dict:
        """The configuration that keys the base model's stored accuracy."""
        return self.key(kind="evaluate", limit=limit, seed=seed, **({} if bf16 else {"precision": "fp32"}))

    def dense_accuracy(self, limit: int | None = DEFAULT_LIMIT, seed: int = 0, bf16: bool = True) -> dict:
        """The base model's accuracy summary, served from the store when already computed."""
        config = self.dense_key(limit, seed, bf16)
        return self.store.cached("evaluate", config, lambda: self.evaluate(limit=limit, seed=seed, bf16=bf16).summary(),
                                 model=self.model_id, dataset=self.dataset)


def open_context(model: str = "default", dataset: str = "fashion-mnist", db: str | Path | None = None,
                 data_root: str | Path | None = None, weights: str | Path | None = None,
                 arch: str | None = None) -> Context:
    """Load model, test split and store. Raises :class:`~lotus_core.core.errors.LotusError` on bad input."""
    test = load_dataset(dataset, "test", data_root)
    num_classes = None if model == "default" else len(test.classes)
    net = load_model(model, num_classes=num_classes, weights=weights, arch=arch)
    return Context(net, net.lotus_id, dataset, data_config(net), test, Store(db),
                   Path(data_root) if data_root else None)
