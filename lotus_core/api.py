"""The notebook API: one function per experiment command of the CLI, on the model and data a notebook holds.

``lotus_core.sweep(model, data, methods="omp,wanda", limit=500)`` runs what ``python -m lotus_core sweep
--methods omp,wanda --limit 500`` runs, through the same command function, the same results store and the
same option definitions: each function's keyword arguments are its command's flags (``--ft-epochs`` is
``ft_epochs=``, a switch such as ``--fp32`` is ``fp32=True``), with the CLI's defaults, parsed and checked by
the CLI's own argparse types, so one definition (the config dataclasses through
:func:`~lotus_core.commands.config_args`) serves both and an unknown keyword is refused. Positional
arguments of a command (``similarity``'s two masks) are keywords named as in its ``--help``.

- ``model``: an ``nn.Module`` (a timm VisionTransformer, or a module computing the same:
  :func:`~lotus_core.models.loading.from_module`, identified by a hash of its weights and architecture),
  ``"default"``, a timm model name or a checkpoint file.
- ``data``: a torch ``Dataset`` or ``DataLoader`` of ``(image, label)`` pairs (PIL images or ``ToTensor()``
  floats in [0, 1]; see :func:`image_set`), a dataset name or an image folder; ``train``: the training split
  when ``data`` is such an object and the experiment trains or calibrates.
- Results go to the store the dashboard reads (``db``, default ``$LOTUS_DB`` or ``data/lotus.db``); a rerun
  is served from it. Each function returns an :class:`ExperimentResult` (``.to_frame()``, ``.figure()``,
  the headline numbers as attributes, shown as a table in Jupyter).
- ``import lotus_core.api as lotus`` reaches every function (``lotus.patches``, ``lotus.speed``); ``lotus_core.sweep``,
  ``lotus_core.lth``, ... work too, except ``patches`` and ``speed``, which at the top level are subpackages.
- Progress is a ``tqdm.auto`` bar (a widget in Jupyter, text in a terminal; ``progress=False``: silent).
  ``KeyboardInterrupt`` stops the call and keeps every finished unit in the store, as the CLI does: call again
  to resume.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .commands import COMMANDS, PROGRESS_STREAM, Command
from .core.context import IN_MEMORY, Context, open_context
from .core.device import resolve_device, use_compute_threads
from .core.errors import LotusError
from .data import ImageSet, load_dataset
from .models.loading import data_config, from_module, load_model
from .results.executors import ExecutorConfig
from .results.store import Store

NOT_EXPERIMENTS = ("info",)  # context commands that compute nothing (api.evaluate is the stored dense accuracy;
# lotus_core.evaluate stays the library's evaluate(model, data, data_config))
MASK_EXPERIMENTS = ("similarity",)  # commands on stored masks alone (no model or data): their functions ignore both
MAX_IMAGES = 200_000  # the most images a Dataset given in memory may hold (a larger one is a mistake, not a test set)


# ---------------------------------------------------------------------------- data and models given as objects
def _uint8_image(image: Any, where: str) -> torch.Tensor:
    """One image as a uint8 ``(C, H, W)`` tensor: a PIL image, or a tensor / array of ``ToTensor()`` floats in
    [0, 1] (uint8 kept as it is)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        array = np.asarray(image.convert("L") if image.mode not in ("L", "RGB") else image)
        tensor = torch.from_numpy(array.copy())
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).detach().cpu()
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise LotusError(f"{where} is a tensor of shape {tuple(tensor.shape)}; give (C, H, W) images with 1 or 3 "
                         "channels (transforms.ToTensor())")
    if tensor.dtype == torch.uint8:
        return tensor
    tensor = tensor.float()
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0 or high > 1:
        raise LotusError(f"{where} has values in [{low:.3g}, {high:.3g}]; give ToTensor() images in [0, 1] without "
                         "Normalize (LOTUS normalises with the model's mean and std)")
    return (tensor * 255).round().to(torch.uint8)


def _pairs(data: Any) -> Iterable[tuple[Any, Any]]:
    """``(image, label)`` pairs of a Dataset (indexed) or a DataLoader (batches unbatched)."""
    if isinstance(data, torch.utils.data.DataLoader):
        for batch in data:
            images, labels = batch[0], batch[1]
            yield from zip(images, torch.as_tensor(labels).reshape(-1).tolist())
        return
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise LotusError(f"data must be a torch Dataset or DataLoader of (image, label) pairs, a dataset name or "
                         f"an image folder, not a {type(data).__name__}")
    if len(data) > MAX_IMAGES:
        raise LotusError(f"the {type(data).__name__} holds {len(data):,} images, over {MAX_IMAGES:,}; pass a "
                         "torch.utils.data.Subset")
    for i in range(len(data)):
        item = data[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise LotusError(f"item {i} of the {type(data).__name__} is not an (image, label) pair")
        yield item[0], item[1]


def image_set(data: Any, split: str, classes: list[str] | None = None) -> ImageSet:
    """A torch Dataset or DataLoader of ``(image, label)`` pairs as an :class:`ImageSet` named
    ``"memory:<content hash>"``; class names from ``data.classes`` (or its dataset's) or ``classes``, else the
    labels as text. Every image must have one size; labels are class indices. The name is the content's hash,
    so the same images find their stored results again: give a DataLoader without ``shuffle`` and without random
    transforms, or each call is other data."""
    images, labels = [], []
    for i, (image, label) in enumerate(_pairs(data)):
        images.append(_uint8_image(image, f"image {i} of the {type(data).__name__}"))
        labels.append(int(label))
        if images[-1].shape != images[0].shape:
            raise LotusError(f"image {i} is {tuple(images[-1].shape)}, image 0 {tuple(images[0].shape)}; give images "
                             "of one size (transforms.Resize)")
    if not images:
        raise LotusError(f"the {type(data).__name__} given as {split} data holds no images")
    if min(labels) < 0:
        raise LotusError(f"labels must be class indices 0, 1, ...; the {split} data has {min(labels)}")
    named = classes or getattr(data, "classes", None) or getattr(getattr(data, "dataset", None), "classes", None)
    names = [str(c) for c in named] if named else [str(c) for c in range(max(labels) + 1)]
    if max(labels) >= len(names):
        raise LotusError(f"label {max(labels)} has no class name ({len(names)} classes); pass classes=[...]")
    stacked, target = torch.stack(images), torch.tensor(labels, dtype=torch.int64)
    probe = ImageSet("", split, stacked, target, names, "")
    return ImageSet(f"{IN_MEMORY}{probe.digest[:12]}", split, stacked, target, names,
                    f"in-memory {type(data).__name__}")


def _is_name(value: Any) -> bool:
    return isinstance(value, (str, Path))


class _ProgressStore(Store):
    """The results store, with each run's progress also drawn as one ``tqdm.auto`` bar (this call's own)."""

    def __init__(self, path: str | Path | None, show: bool, out: Any):
        super().__init__(path)
        self.show, self.out, self.bar, self.kinds = show, out, None, {}

    def set_progress(self, run_id: str, progress: dict) -> None:
        super().set_progress(run_id, progress)
        if not self.show:
            return
        import warnings

        from .views.progress import describe, fraction_done

        with warnings.catch_warnings():  # tqdm.auto in a Jupyter without ipywidgets: a text bar, said once here
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm

        if run_id not in self.kinds:
            self.kinds[run_id] = (self.get_run(run_id) or {}).get("kind", "")
        kind = self.kinds[run_id]
        if self.bar is None:
            self.bar = tqdm(total=100, file=self.out, leave=True, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
        done = fraction_done(progress, kind)
        self.bar.n = round(100 * done) if done is not None else self.bar.n
        self.bar.set_description(f"{kind} ({describe(progress, kind).split(';')[0].strip(', ')[:100]})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def session(model: nn.Module | str = "default", data: Any = "fashion-mnist", train: Any = None,
            db: str | Path | None = None, device: str | None = None, head_seed: int = 0,
            data_root: str | Path | None = None, weights: str | Path | None = None, arch: str | None = None,
            classes: list[str] | None = None, progress: bool = True) -> Context:
    """The :class:`Context` of a model and data given as objects or names (see the module docstring); the
    CLI's ``--model``/``--dataset``/``--db``/``--device``/``--head-seed``/``--data-root``/``--weights``/``--arch``."""
    if _is_name(model) and _is_name(data) and train is None:
        ctx = open_context(str(model), str(data), db, data_root, weights, arch, device, head_seed,
                           ExecutorConfig.from_env())
    else:
        use_compute_threads()
        test = load_dataset(str(data), "test", data_root) if _is_name(data) else image_set(data, "test", classes)
        train_set = image_set(train, "train", classes or test.classes) if train is not None else None
        if train_set is not None and len(train_set.classes) != len(test.classes):
            raise LotusError(f"the training data has {len(train_set.classes)} classes, the test data "
                             f"{len(test.classes)}; give two splits of one dataset")
        if isinstance(model, nn.Module):
            net = from_module(model, classes=test.classes, head_seed=head_seed)
        elif _is_name(model):
            named = str(model) != "default"
            net = load_model(str(model), num_classes=len(test.classes) if named else None, weights=weights, arch=arch,
                             head_seed=head_seed, classes=test.classes if named else None)
        else:
            raise LotusError(f"model must be an nn.Module, 'default', a timm model name or a checkpoint file, not "
                             f"a {type(model).__name__}")
        net.to(resolve_device(device))
        ctx = Context(net, net.lotus_id, test.name, data_config(net), test, None,
                      Path(data_root).expanduser() if data_root else None, train_set, ExecutorConfig.from_env())
    ctx.store = _ProgressStore(db, progress, sys.stderr)
    return ctx


# ---------------------------------------------------------------------------- options: the CLI's flags
class _Refusal(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # a LotusError, never SystemExit, in a notebook
        raise LotusError(f"{self.prog}: {message}")


@dataclasses.dataclass(frozen=True)
class Option:
    """One keyword of an API function: the CLI flag it stands for."""

    name: str  # the keyword: the flag without dashes, "-" as "_" (a positional: its name)
    action: argparse.Action

    @property
    def switch(self) -> bool:
        return self.action.nargs == 0

    @property
    def default(self) -> Any:
        if self.switch:
            return False
        return inspect.Parameter.empty if self.action.required else self.action.default

    def argv(self, value: Any) -> list[str]:
        """The command line giving ``value`` (a Python value; a list becomes a comma list)."""
        if self.switch:
            return [self.action.option_strings[0]] if value else []
        if self.action.nargs == "+" or isinstance(self.action, argparse._AppendAction):
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if isinstance(self.action, argparse._AppendAction):
                return [x for v in values for x in (self.action.option_strings[0], str(v))]
            texts = [str(v) for v in values]
        else:
            texts = [",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)]
        return [*self.action.option_strings[:1], *texts]


def _parser(cmd: Command) -> tuple[argparse.ArgumentParser, list[Option]]:
    parser = _Refusal(prog=f"lotus_core.{cmd.name.replace('-', '_')}", add_help=False)
    for names, kwargs in cmd.options():
        parser.add_argument(*names, **kwargs)
    options = []
    for action in parser._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        options.append(Option((flag[2:] if flag else action.dest).replace("-", "_"), action))
    return parser, options


def _namespace(cmd: Command, kwargs: dict) -> argparse.Namespace:
    """``kwargs`` parsed as ``cmd``'s command line (unknown keywords refused, every value checked by its flag)."""
    parser, options = _parser(cmd)
    known = {o.name: o for o in options}
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise LotusError(f"{parser.prog}() has no option {unknown[0]!r}; its options: {', '.join(known)}")
    argv, positional = [], []
    for name, value in kwargs.items():
        option = known[name]
        if value is None and not option.action.required:
            continue
        words = option.argv(value)
        (argv if option.action.option_strings else positional).extend(words)
    return parser.parse_args([*argv, *positional])


# ---------------------------------------------------------------------------- results
@dataclasses.dataclass
class ExperimentResult:
    """What one API call computed (or served from the store).

    Attributes:
        kind: the command, e.g. ``"sweep"``.
        output: what the CLI prints with ``--json`` for the same call.
        run_ids: the stored runs the call made or read (the Experiments page lists them).
    Every field of ``output`` is an attribute too (``result.dense``, ``result.accuracy``).
    """

    kind: str
    output: dict
    run_ids: list[str]
    context: Context = dataclasses.field(repr=False)

    def __getattr__(self, name: str) -> Any:
        output = self.__dict__.get("output") or {}
        if name in output:
            return output[name]
        raise AttributeError(f"{self.kind} result has no attribute {name!r}; it has {', '.join(output)}")

    @property
    def run_id(self) -> str | None:
        """The (first) stored run of the call."""
        return self.run_ids[0] if self.run_ids else None

    def to_frame(self) -> pd.DataFrame:
        """The result as a table: the curve of its runs (columns run, kind, series, axis, x, accuracy) where the
        kind has one, else its run's points; for a call that stores no run, its first table-like output (a list of
        rows, or a mapping of rows such as sensitivity's layer -> sparsity -> drop), else one row of its scalars."""
        from .views.experiments import overlay_curves

        if self.run_ids:
            curves = overlay_curves(self.context.store, self.run_ids)
            if len(curves):
                return curves
            return self.context.store.points_frame(self.run_ids[0])
        for value in self.output.values():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return pd.DataFrame(value)
            if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                return pd.DataFrame.from_dict(value, orient="index")
        return pd.DataFrame([{k: v for k, v in self.output.items() if isinstance(v, (int, float, str, bool))}])

    def figure(self):
        """The Experiments page's chart of the result's curve (plotly), or None for a kind without a curve."""
        from .views.experiments import overlay_curves, overlay_figures

        figures = overlay_figures(overlay_curves(self.context.store, self.run_ids)) if self.run_ids else {}
        return next(iter(figures.values()), None)

    def _repr_html_(self) -> str:
        import html

        scalars = {k: v for k, v in self.output.items() if isinstance(v, (int, float, str, bool)) or v is None}
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
                       for k, v in scalars.items())
        return f"<b>{html.escape(self.kind)}</b> <code>{html.escape(', '.join(r[:12] for r in self.run_ids))}</code>" \
               f"<table>{rows}</table>"


@dataclasses.dataclass
class SweepResult(ExperimentResult):
    """A sweep: ``dense_accuracy``, ``turning_points`` (method -> essential sparsity), the Pruning page's chart."""

    @property
    def dense_accuracy(self) -> float:
        return self.output["dense"]["accuracy"]

    @property
    def turning_points(self) -> dict[str, float]:
        """Each method's essential sparsity (the highest before accuracy drops below dense - eps; fraction)."""
        return {m: e["essential_sparsity"] for m, e in self.output["essential"].items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per evaluated point: method, sparsity, accuracy, ci_low, ci_high, ... (fractions)."""
        return pd.DataFrame(self.output["points"])

    def figure(self):
        from .pruning.sweep import sweep_result
        from .views.figures import sparsity_curve

        stored = sweep_result(self.context, {**self.output, "run_id": self.run_id})
        eps = self.context.store.get_run(self.run_id)["config"].get("eps", 0.01)
        return sparsity_curve(stored.frame, stored.dense, stored.essential, eps)

    def _repr_html_(self) -> str:
        import html

        points = ", ".join(f"{html.escape(m)} {100 * s:.1f}%" for m, s in self.turning_points.items())
        return f"<b>sweep</b>: dense {100 * self.dense_accuracy:.2f}%; turning point {points}" + \
            self.to_frame().to_html(max_rows=20)


@dataclasses.dataclass
class PatchesResult(ExperimentResult):
    """Patch scores and data lottery tickets of test images, drawn as the Patches page draws them."""

    def to_frame(self) -> pd.DataFrame:
        """One row per image and patch: index, label, prediction, prediction_lottery, patch, score, kept."""
        rows = [{"index": r["index"], "label": r["label"], "prediction": r["prediction"],
                 "prediction_lottery": r["prediction_lottery"], "patch": p, "score": s, "kept": p in set(r["kept"])}
                for r in self.output["images"] for p, s in enumerate(r["scores"])]
        return pd.DataFrame(rows)

    def figure(self):
        from .patches.analysis import to_uint8_model_size
        from .patches.figures import patch_overlays
        from .patches.grid import patch_grid

        ctx, records = self.context, self.output["images"]
        images = to_uint8_model_size(ctx.test.images[[r["index"] for r in records]], ctx.data_config)
        scores = torch.tensor([r["scores"] for r in records])
        keep = torch.zeros_like(scores, dtype=torch.bool)
        for i, r in enumerate(records):
            keep[i, r["kept"]] = True
        names = ctx.test.classes
        titles = [f"#{r['index']} ({names[r['label']]})<br>{names[r['prediction']]} -> {names[r['prediction_lottery']]}"
                  for r in records]
        return patch_overlays(images, scores, keep, patch_grid(ctx.model, ctx.data_config["input_size"][1:]), titles)

    def _repr_html_(self) -> str:
        return super()._repr_html_() + self.to_frame().groupby("index")["kept"].sum().to_frame("kept patches").to_html()


RESULTS: dict[str, type[ExperimentResult]] = {"sweep": SweepResult, "patches": PatchesResult}
"""Kinds whose result has a table and chart of its own (others: :class:`ExperimentResult`)."""


def _run_ids(output: dict) -> list[str]:
    ids = [output["run_id"]] if output.get("run_id") else []
    return ids + [r["run_id"] for r in output.get("runs", []) if isinstance(r, dict) and r.get("run_id")]


# ---------------------------------------------------------------------------- one function per command
CONTEXT_KEYWORDS = ("model", "data", "train", "db", "device", "head_seed", "data_root", "weights", "arch", "classes",
                    "progress")


def run_command(name: str, model: nn.Module | str = "default", data: Any = "fashion-mnist", **kwargs: Any) -> ExperimentResult:
    """Run CLI command ``name`` (e.g. ``"sweep"``) on ``model`` and ``data`` with the options ``kwargs``."""
    cmd = COMMANDS.get(name)
    if cmd is None or name.replace("-", "_") not in experiment_names():
        raise LotusError(f"no experiment {name!r}; choose one of {', '.join(experiment_names())}")
    context_kwargs = {k: kwargs.pop(k) for k in CONTEXT_KEYWORDS if k in kwargs}
    args = _namespace(cmd, kwargs)
    args.db, args.json = context_kwargs.get("db"), False  # the common flags a command may read
    ctx = session(model, data, **context_kwargs) if cmd.context else None
    silenced = PROGRESS_STREAM.set(io.StringIO())  # the command's own progress lines (this context only): the bar
    try:
        output = cmd.run(args, ctx)
    finally:
        PROGRESS_STREAM.reset(silenced)
        if ctx is not None:
            ctx.store.close()
    return RESULTS.get(name, ExperimentResult)(name, output, _run_ids(output), ctx)


def experiment_names() -> list[str]:
    """The API's experiment functions: every context command of the CLI but :data:`NOT_EXPERIMENTS`, and
    :data:`MASK_EXPERIMENTS` (``lth-control`` is ``lth_control``)."""
    return [c.name.replace("-", "_") for c in COMMANDS.values()
            if (c.context and c.name not in NOT_EXPERIMENTS) or c.name in MASK_EXPERIMENTS]


def _function(cmd: Command) -> Callable[..., ExperimentResult]:
    def run(model: nn.Module | str = "default", data: Any = "fashion-mnist", **kwargs: Any) -> ExperimentResult:
        return run_command(cmd.name, model, data, **kwargs)

    def signature() -> inspect.Signature:  # the command's flags as keyword-only parameters, with their defaults
        keyword = inspect.Parameter.KEYWORD_ONLY
        own = [inspect.Parameter(o.name, keyword, default=o.default) for o in _parser(cmd)[1]]
        common = [inspect.Parameter(k, keyword, default=d) for k, d in
                  (("train", None), ("db", None), ("device", None), ("head_seed", 0), ("data_root", None),
                   ("weights", None), ("arch", None), ("classes", None), ("progress", True))]
        pos = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature([inspect.Parameter("model", pos, default="default"),
                                  inspect.Parameter("data", pos, default="fashion-mnist"), *own, *common])

    run.__name__ = run.__qualname__ = cmd.name.replace("-", "_")
    run.__doc__ = (f"{cmd.help[0].upper()}{cmd.help[1:]}: ``python -m lotus_core {cmd.name}`` on an in-memory model "
                   f"and data (see :mod:`lotus_core.api`); keywords are its flags (``help(...)`` lists them).")
    run.__module__ = __name__
    run.__signature__ = signature()  # help() and Jupyter's completion show the flags as keywords
    return run


def essential_sparsity(curve: SweepResult | pd.DataFrame, dense_accuracy: float | None = None,
                       eps: float = 0.01) -> dict[str, float]:
    """The essential-sparsity turning point of each method of a sweep's result or of a curve table with columns
    method (optional), sparsity and accuracy (fractions): the highest sparsity before accuracy first drops
    below ``dense_accuracy - eps`` (Chen et al. 2023, "Sparsity May Cry"; :mod:`lotus_core.pruning.essential`)."""
    from .pruning.essential import essential_sparsity as turning_point

    if isinstance(curve, SweepResult):
        frame, dense_accuracy = curve.to_frame(), curve.dense_accuracy if dense_accuracy is None else dense_accuracy
    else:
        frame = curve
    if dense_accuracy is None:
        dense = frame.loc[frame["sparsity"] == 0, "accuracy"]
        if dense.empty:
            raise LotusError("give dense_accuracy= or a row with sparsity 0 (the dense model)")
        dense_accuracy = float(dense.iloc[0])
    groups = frame.groupby("method") if "method" in frame.columns else [("curve", frame)]
    return {m: turning_point(part, dense_accuracy, eps).essential_sparsity for m, part in groups}


FUNCTIONS: dict[str, Callable[..., ExperimentResult]] = {
    name: _function(COMMANDS[name.replace("_", "-")]) for name in experiment_names()}
globals().update(FUNCTIONS)

__all__ = ["ExperimentResult", "PatchesResult", "SweepResult", "essential_sparsity", "experiment_names",
           "image_set", "run_command", "session", *FUNCTIONS]
