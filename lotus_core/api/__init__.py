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

import io
import inspect
from typing import Any, Callable

import pandas as pd
from torch import nn

from ..commands import COMMANDS, PROGRESS_STREAM, Command
from ..core.errors import LotusError
from ..core.tolerance import DEFAULT_EPS
from .inputs import image_set, session
from .options import namespace, parser_options
from .results import RESULTS, ExperimentResult, PatchesResult, SweepResult, run_ids

NOT_EXPERIMENTS = ("info",)  # context commands that compute nothing (api.evaluate is the stored dense accuracy;
# lotus_core.evaluate stays the library's evaluate(model, data, data_config))
MASK_EXPERIMENTS = ("similarity",)  # commands on stored masks alone (no model or data): their functions ignore both


CONTEXT_KEYWORDS = ("model", "data", "train", "db", "device", "head_seed", "data_root", "weights", "arch", "classes",
                    "progress")


def run_command(name: str, model: nn.Module | str = "default", data: Any = "fashion-mnist", **kwargs: Any) -> ExperimentResult:
    """Run CLI command ``name`` (e.g. ``"sweep"``) on ``model`` and ``data`` with the options ``kwargs``."""
    cmd = COMMANDS.get(name)
    if cmd is None or name.replace("-", "_") not in experiment_names():
        raise LotusError(f"no experiment {name!r}; choose one of {', '.join(experiment_names())}")
    context_kwargs = {k: kwargs.pop(k) for k in CONTEXT_KEYWORDS if k in kwargs}
    args = namespace(cmd, kwargs)
    args.db, args.json = context_kwargs.get("db"), False  # the common flags a command may read
    ctx = session(model, data, **context_kwargs) if cmd.context else None
    silenced = PROGRESS_STREAM.set(io.StringIO())  # the command's own progress lines (this context only): the bar
    try:
        output = cmd.run(args, ctx)
    finally:
        PROGRESS_STREAM.reset(silenced)
        if ctx is not None:
            ctx.store.close()
    return RESULTS.get(name, ExperimentResult)(name, output, run_ids(output), ctx)


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
        own = [inspect.Parameter(o.name, keyword, default=o.default) for o in parser_options(cmd)[1]]
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
                       eps: float = DEFAULT_EPS) -> dict[str, float]:
    """The essential-sparsity turning point of each method of a sweep's result or of a curve table with columns
    method (optional), sparsity and accuracy (fractions): the highest sparsity before accuracy first drops
    below ``dense_accuracy - eps`` (Chen et al. 2023, "Sparsity May Cry"; :mod:`lotus_core.pruning.essential`)."""
    from ..pruning.essential import essential_sparsity as turning_point

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
