"""A Context bundles what every analysis needs: the base model, its input config, the
datasets and the results store. The CLI and the dashboard both open one; analyses take it
as their first argument.

The base model is shared (and cached by the dashboard): never modify it; prune or train
a copy (:meth:`Context.copy_model`). It is placed on its device once, here (``--device``);
nothing afterwards moves it, and copies stay on the same device.

A model whose classifier head was not trained on this dataset (a timm head re-initialised
for the dataset's classes, or a checkpoint trained on other classes) is marked by
:attr:`Context.head_problem`; experiments that use the head as it is refuse it
(:meth:`Context.require_trained_head`) and say to fine-tune it first.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .core.device import precision_used, use_compute_threads
from .core.errors import LotusError
from .data.images import ImageSet
from .data import load_dataset
from .core.device import model_device, resolve_device
from .training.evaluate import DEFAULT_LIMIT, EvalResult, evaluate, hard_first
from .models.loading import CHECKPOINT_SUFFIXES, load_model
from .models.heads import Head
from .models.arch import data_config, head_outputs
from .core.executor import ExecutorConfig
from .results.keys import base_key
from .results.registry import ExperimentSpec, Headline, pct, register_experiment
from .results.store import Store


IN_MEMORY = "memory:"  # dataset names of data given as objects (notebooks), "memory:<content hash>"


@dataclass
class Context:
    """Model + data + store for one analysis session.

    Attributes:
        model: the base model in eval mode (never mutated).
        model_id: ``model.lotus_id``, e.g. ``"default@3f2a..."``; part of every result key.
        dataset: dataset name, e.g. ``"fashion-mnist"``.
        data_config: the model's input config (input_size, mean, std).
        test: the test split.
        store: the results store (None in the copy shipped to executor workers, which never write it).
        executor: where experiments run their independent units (:mod:`lotus_core.results.executors`).
    """

    model: nn.Module
    model_id: str
    dataset: str
    data_config: dict
    test: ImageSet
    store: Store | None
    data_root: Path | None = None
    _train: ImageSet | None = field(default=None, repr=False)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    @property
    def train(self) -> ImageSet:
        """The training split, loaded on first use (in-memory data has only the split it was given)."""
        if self._train is None:
            if self.dataset.startswith(IN_MEMORY):
                raise LotusError("this experiment trains or calibrates on training images: pass train= (a Dataset "
                                 "of training images) beside the test data")
            self._train = load_dataset(self.dataset, "train", self.data_root)
        return self._train

    @property
    def train_variant(self) -> str:
        """The training split's ``"<images>@<digest>"`` for result keys; ``"none"`` for in-memory test data given
        without a training split (an experiment that needs one refuses it)."""
        if self._train is None and self.dataset.startswith(IN_MEMORY):
            return "none"
        return self.train.variant

    @property
    def device(self) -> torch.device:
        """Where the base model (and every copy of it) computes."""
        return model_device(self.model)

    @property
    def head(self) -> Head:
        """What the base model's classifier was trained on (see :class:`~lotus_core.models.heads.Head`)."""
        return getattr(self.model, "lotus_head", None) or Head("pretrained", head_outputs(self.model))

    @property
    def head_problem(self) -> str | None:
        """``"head not trained on this dataset: fine-tune it first"`` (with detail) or None."""
        return self.head.problem(self.test.classes)

    def require_trained_head(self, what: str = "this experiment") -> None:
        """Raise :class:`LotusError` when the head is not trained on this dataset (never prune and report a
        random classifier as if it were trained)."""
        problem = self.head_problem
        if problem:
            raise LotusError(f"{self.model_id} on {self.dataset}: {problem} "
                             f"(`python -m lotus_core finetune --model ... --dataset {self.dataset}`) before {what}, "
                             "or use the Essential Sparsity protocol (--protocol essential)")

    def key(self, **extra: Any) -> dict:
        """The base of every result key: what a result IS besides the hyperparameters ``extra``.

        - ``model``: the model id (name and checkpoint hash); ``dataset``: the dataset name;
        - ``data``: the splits the computation reads, as ``"<images>@<content hash>"``: always ``test``, and
          ``train`` only when :func:`reads_train` says the experiment reads training images (a test-only
          evaluation or a sweep without fine-tuning or calibration keeps its key when the full training set
          is installed);
        - ``precision``: the precision POLICY (``auto``: bf16 where the device runs it fast, else fp32;
          ``fp32`` when ``bf16=False`` is in ``extra``), not the precision a machine happened to use.

        Where and how a result was computed (device, precision actually used, threads, CPU, versions, load)
        is not part of the key: :meth:`computed` gives the facts silent reuse requires, and the store keeps
        the full provenance beside every run (:mod:`lotus_core.results.provenance`, docs/provenance.md).
        """
        return base_key(self.model_id, self.dataset, self.test.variant, self.train_variant, **extra)

    def computed(self, **extra: Any) -> dict:
        """Where a result with hyperparameters ``extra`` is computed here, in the facts a stored result must
        share to be reused without a label: the device type, the precision actually used
        (:func:`~lotus_core.core.device.precision_used`) and torch's CPU thread count (``$LOTUS_THREADS``,
        which changes the order of reductions). They are part of a run's id, never of its key."""
        device = self.device
        return {"device": device.type, "precision": precision_used(device, bool(extra.get("bf16", True))),
                "threads": torch.get_num_threads()}

    def copy_model(self) -> nn.Module:
        """A deep copy of the base model, safe to prune or train."""
        return copy.deepcopy(self.model)

    def evaluate(self, model: nn.Module | None = None, limit: int | None = DEFAULT_LIMIT, seed: int = 0,
                 bf16: bool = True, margins: bool = False) -> EvalResult:
        """Accuracy of ``model`` (default: the base model) on the fixed test subset (``margins``: see
        :func:`~lotus_core.training.evaluate.evaluate`)."""
        return evaluate(model if model is not None else self.model, self.test, self.data_config, limit=limit, seed=seed,
                        bf16=bf16, margins=margins)

    def dense_key(self, limit: int | None = DEFAULT_LIMIT, seed: int = 0, bf16: bool = True) -> dict:
        """The configuration that keys the base model's stored accuracy."""
        return self.key(kind="evaluate", **self.dense_params(limit, seed, bf16))

    @staticmethod
    def dense_params(limit: int | None = DEFAULT_LIMIT, seed: int = 0, bf16: bool = True) -> dict:
        """The hyperparameters of the base model's stored accuracy (kind ``evaluate``)."""
        return {"limit": limit, "seed": seed, **({} if bf16 else {"bf16": False})}

    def dense_accuracy(self, limit: int | None = DEFAULT_LIMIT, seed: int = 0, bf16: bool = True,
                       refresh: bool = False, here: bool = False) -> dict:
        """The base model's accuracy summary (stored as the result "evaluate", keyed by :meth:`dense_key`),
        served from the store when already computed (here, or elsewhere: labelled); ``refresh`` recomputes it,
        ``here`` computes it on this machine beside one computed elsewhere."""
        from .results.runs import run_experiment

        def compute(ctx: Context, _, run) -> dict:  # the forward that measures it also orders the images
            res = ctx.evaluate(limit=limit, seed=seed, bf16=bf16, margins=True)
            run.point(HARD_FIRST, {"order": hard_first(res.margins)})
            return res.summary()

        return run_experiment(self, "evaluate", self.dense_params(limit, seed, bf16), compute, refresh=refresh,
                              here=here)

    def hard_first_order(self, limit: int | None = DEFAULT_LIMIT, seed: int = 0, bf16: bool = True) -> list[int]:
        """The test subset's positions, the base model's most confidently wrong image first
        (:func:`~lotus_core.training.evaluate.hard_first`): a point of the stored dense evaluation, written by
        :meth:`dense_accuracy`'s forward, or added by one forward to a dense accuracy stored without it."""
        summary = self.dense_accuracy(limit=limit, seed=seed, bf16=bf16)
        point = self.store.get_point(summary["run_id"], HARD_FIRST)
        if point is None:
            point = {"order": hard_first(self.evaluate(limit=limit, seed=seed, bf16=bf16, margins=True).margins)}
            self.store.put_point(summary["run_id"], HARD_FIRST, point)
        return point["order"]


HARD_FIRST = "order|hard-first"  # the point of a dense evaluation holding its images' hard-first order


def open_context(model: str = "default", dataset: str = "fashion-mnist", db: str | Path | None = None,
                 data_root: str | Path | None = None, weights: str | Path | None = None,
                 arch: str | None = None, device: str | None = None, head_seed: int = 0,
                 executor: ExecutorConfig | None = None) -> Context:
    """Load model, test split and store, and place the model on ``device`` (``cpu``, ``cuda``,
    ``cuda:N``; default: CUDA when present). Raises :class:`~lotus_core.core.errors.LotusError` on bad input.

    ``executor`` defaults to the local one (in-process, as a loop). Every input is checked before
    anything is computed or recorded: a ``data_root`` must exist, ``weights`` apply to timm model
    names only, ``arch`` to checkpoints without metadata. A head that does not fit the dataset is
    not refused here (the user is told, and may fine-tune it): :meth:`Context.require_trained_head`
    refuses to prune or report with it. Torch's CPU threads are set to ``$LOTUS_THREADS`` (part of
    every result key).
    """
    use_compute_threads()
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        raise LotusError(f"--data-root {data_root} is not a folder; pass an existing folder or leave it out")
    data_root = Path(data_root).expanduser() if data_root is not None else None
    if weights is not None and (model == "default" or Path(model).suffix in CHECKPOINT_SUFFIXES or Path(model).is_file()):
        raise LotusError(f"--weights applies to timm model names only; {model!r} carries its own weights, "
                         "so leave --weights out (or pass the weights file as --model)")
    if arch is not None and (model == "default" or not (Path(model).suffix in CHECKPOINT_SUFFIXES
                                                         or Path(model).is_file())):
        raise LotusError(f"--arch describes a checkpoint file without metadata; {model!r} is not one, "
                         "so leave --arch out")
    where = resolve_device(device)
    test = load_dataset(dataset, "test", data_root)
    num_classes = None if model == "default" else len(test.classes)
    net = load_model(model, num_classes=num_classes, weights=weights, arch=arch, head_seed=head_seed,
                     classes=None if model == "default" else test.classes)
    net.to(where)  # the one place the shared model is moved
    return Context(net, net.lotus_id, dataset, data_config(net), test, Store(db), data_root,
                   executor=executor or ExecutorConfig())


def evaluate_headline(s: dict) -> Headline:
    """Headline of a stored dense evaluation."""
    return Headline(s["accuracy"], 0.0, f"dense accuracy {pct(s['accuracy'])} on {s['n']:,} images")


register_experiment(ExperimentSpec("evaluate", headline=evaluate_headline))  # Context.dense_accuracy computes it
