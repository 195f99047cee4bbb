"""Pruning commands: prune, sweep, essential, sensitivity."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..core.config import from_args
from ..core.errors import LotusError
from ..core.paths import package_file
from ..core.tolerance import DEFAULT_EPS
from . import progress_stream
from . import (arg, command, config_args, fraction, learning_rate, non_negative_int, output_path, positive_int,
               resolution, seed, tolerance)


def _sweep_args(*names: str) -> list:
    """Flags of the SweepConfig fields ``names`` (generated from the dataclass; imports torch, so only called
    while the command that needs them is parsed)."""
    from ..pruning import SCOPES
    from ..pruning.sweep import PROTOCOLS, SEARCHES, SweepConfig

    return config_args(SweepConfig, skip=tuple(f.name for f in dataclasses.fields(SweepConfig) if f.name not in names),
                       scope={"choices": list(SCOPES)}, limit=positive_int, protocol={"choices": list(PROTOCOLS)},
                       seed=seed, finetune_steps=non_negative_int, resolution=resolution, eps=tolerance,
                       bf16={"flags": ("--fp32",), "help": "evaluate in fp32 (default: bf16 autocast where the "
                                                           "hardware makes it fast)"},
                       search={"choices": list(SEARCHES),
                               "help": "; ".join(f"{k}: {v}" for k, v in SEARCHES.items())},
                       early={"flags": ("--full-eval",),
                              "help": "--search bisect or scout: evaluate every image of each point (same answer)"})


def _method_args() -> list:
    """Every pruning method's own options as flags, generated from its options class, each flag once (NMOptions:
    --n, --m; WandaOptions: --calib-size; SparseGPTOptions: --damp, --blocksize; SynFlowOptions: --rounds;
    GraSPOptions: --temperature). A flag's value goes to every chosen method whose options have that field
    (:func:`_sweep_config`), so an option added to a method's class is a flag that reaches the method."""
    from ..pruning import PRUNERS

    out: dict[tuple, tuple] = {}
    for p in PRUNERS.values():
        for a in config_args(p.options, n=positive_int, m=positive_int, calib_size=positive_int,
                             blocksize=positive_int, rounds=positive_int) if p.options else []:
            out.setdefault(a[0], a)
    return list(out.values())


def methods_list(text: str) -> tuple[str, ...]:
    """argparse type: a comma list of pruning methods, refused at parse time (before any model is loaded)."""
    from ..pruning import PRUNERS

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not methods:
        raise argparse.ArgumentTypeError(f"no methods given; choose from {', '.join(PRUNERS)}")
    unknown = [m for m in methods if m not in PRUNERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method {unknown[0]!r}; choose from {', '.join(PRUNERS)}")
    return methods


def sparsity_list(text: str) -> tuple[float, ...]:
    """argparse type: sweep sparsities (start:stop:step or a list), refused at parse time."""
    from ..pruning.sweep import parse_sparsities

    try:
        return parse_sparsities(text)
    except LotusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def controls_list(text: str) -> tuple[str, ...]:
    """argparse type: a comma list of sanity-check controls (shuffle, reinit), possibly empty."""
    from ..pruning.controls import CONTROLS

    names = tuple(c.strip() for c in text.split(",") if c.strip())
    for c in names:
        if c not in CONTROLS:
            raise argparse.ArgumentTypeError(f"unknown control {c!r}; choose from {', '.join(CONTROLS)}")
    return names


def _common() -> list:
    """Options shared by prune and sweep (built only when one of them is parsed: they import torch)."""
    from ..pruning.controls import CONTROLS

    return [
        *_sweep_args("scope", "limit", "seed", "finetune_steps", "bf16"),
        *_method_args(),
        arg("--controls", type=controls_list, default=(),
            help="sanity checks beside each method, comma-separated: " + "; ".join(f"{k}: {v}" for k, v in CONTROLS.items())),
    ]


def _sweep_config(args, **fields):
    """The sweep configuration of the parsed arguments with ``fields`` set: SweepConfig's own flags, and each
    chosen method's options read from the flags generated from its options class (``method_options``: the
    values typed reach the method as they are, with no copy in between)."""
    from ..pruning import PRUNERS
    from ..pruning.sweep import SweepConfig

    values = {**vars(args), **fields}
    chosen = [m for m in dict.fromkeys(values["methods"]) if m in PRUNERS]
    _refuse_unused_options(values, chosen)
    options = {m: from_args(PRUNERS[m].options, values) for m in chosen if PRUNERS[m].options is not None}
    return from_args(SweepConfig, {**values, "method_options": options})


def _refuse_unused_options(values: dict, chosen: list[str]) -> None:
    """A method option typed (away from its default) that none of the ``chosen`` methods has would reach no
    method: refused with one line naming the methods that have it."""
    from ..pruning import PRUNERS

    owners: dict[str, list[str]] = {}  # option field -> the methods whose options have it
    defaults: dict[str, object] = {}  # option field -> its flag's default (the first class's, as _method_args)
    for name, p in PRUNERS.items():
        for f in dataclasses.fields(p.options) if p.options else ():
            owners.setdefault(f.name, []).append(name)
            defaults.setdefault(f.name, f.default)
    for field_name, methods in owners.items():
        typed = values.get(field_name, defaults[field_name])
        if typed != defaults[field_name] and not set(methods) & set(chosen):
            raise LotusError(f"--{field_name.replace('_', '-')} {typed} is an option of {', '.join(methods)}, none of "
                             f"the methods chosen ({', '.join(chosen)}); add one of them or drop it")


def _check_prune(args) -> None:
    """``prune``'s arguments checked before the model and data load (a refusal is one quick line)."""
    _sweep_config(args, methods=(args.method,))


def _check_sweep(args) -> None:
    """``sweep``'s arguments checked before the model and data load (a refusal is one quick line)."""
    _sweep_config(args, recipe=_recipe(args) if args.protocol == "essential" else None)


def _progress(fields: dict) -> None:
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()),
          file=progress_stream(), flush=True)


def _prune_args() -> list:
    from ..pruning import PRUNERS

    return [arg("--method", required=True, choices=list(PRUNERS)),
            arg("--sparsity", type=fraction, default=0.5, help="fraction of scoped weights to prune, in [0, 1)"),
            arg("--mask-out", default=None, help="write the mask as safetensors"),
            *_common()]


@command("prune", "prune once and evaluate", _prune_args, check=_check_prune)
def prune_cmd(args, ctx) -> dict:
    from ..pruning.sweep import PointEvaluator, curve_name

    output_path(args.mask_out, "--mask-out")
    config = _sweep_config(args, methods=(args.method,))
    evaluator = PointEvaluator(ctx, config)
    sparsity = evaluator.effective_sparsity(args.method, args.sparsity)
    point = evaluator.evaluate(args.method, sparsity)
    controls = {c: evaluator.evaluate(curve_name(args.method, c), sparsity)["accuracy"] for c in config.controls}
    mask = evaluator.mask(args.method, sparsity)
    if args.mask_out:
        mask.save(args.mask_out)
    dense = ctx.dense_accuracy(limit=args.limit, seed=args.seed)
    return {"method": args.method, "sparsity": mask.sparsity, "sparsity_requested": sparsity,
            "accuracy": point["accuracy"], "ci95": [point["ci_low"], point["ci_high"]], "n": point["n"],
            "dense_accuracy": dense["accuracy"], "mask_out": args.mask_out,
            "per_layer": mask.layer_sparsity(), "controls": controls}


def _sweep_cmd_args() -> list:
    from ..pruning import PRUNERS

    return [
        arg("--methods", type=methods_list, default="omp", help=f"comma-separated, from: {', '.join(PRUNERS)}"),
        arg("--sparsities", type=sparsity_list, default="0:0.9:0.1",
            help="start:stop:step or a comma list of fractions (with --search bisect or scout: the range's end "
                 "and the coarse check)"),
        *_sweep_args("search", "early"),
        *_sweep_args("refine", "resolution", "eps", "stop_at_drop"),
        arg("--no-cache", action="store_true", help="recompute instead of reading the results store"),
        *_sweep_args("protocol"),
        # the essential protocol's fine-tuning recipe (FinetuneConfig; the same as `finetune`'s flags)
        arg("--ft-epochs", type=positive_int, default=8, help="essential protocol: fine-tuning epochs per model"),
        arg("--ft-lr", type=learning_rate, default=2e-5, help="essential protocol: peak AdamW learning rate"),
        arg("--ft-batch-size", type=positive_int, default=64, help="essential protocol: batch size"),
        arg("--ft-head-only", action="store_true", help="essential protocol: fine-tune the head only"),
        arg("--ft-train-limit", type=positive_int, default=None, help="essential protocol: training images used"),
        *_common(),
    ]


@command("sweep", "sparsity-accuracy curves and the essential-sparsity turning point", _sweep_cmd_args,
         check=_check_sweep)
def sweep_cmd(args, ctx) -> dict:
    from ..pruning.sweep import run_sweep

    # checked before the model and data were loaded (_check_sweep): a refused sweep says so at once
    config = _sweep_config(args, recipe=_recipe(args) if args.protocol == "essential" else None)
    result = run_sweep(ctx, config, on_progress=_progress, refresh=args.no_cache)
    return {"run_id": result.run_id, "protocol": args.protocol, "dense": result.dense,
            "points": result.rows, "essential": result.essential}


def _recipe(args):
    """The essential protocol's fine-tuning recipe from the --ft-* flags."""
    from ..training.finetune import FinetuneConfig

    return FinetuneConfig(epochs=args.ft_epochs, lr=args.ft_lr, batch_size=args.ft_batch_size,
                          head_only=args.ft_head_only, train_limit=args.ft_train_limit, seed=args.seed)


def _essential_module():
    """lotus_core.pruning.essential, pure Python: loaded from its file without running
    lotus_core/pruning/__init__.py (which imports torch) unless that package is already imported."""
    import importlib
    import importlib.util

    name = "lotus_core.pruning.essential"
    if name in sys.modules or "lotus_core.pruning" in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, package_file("pruning", "essential.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the package's own import later finds this same module
    spec.loader.exec_module(module)
    return module


@command("essential", "turning point of a curve read from a CSV with columns sparsity,accuracy", [
    arg("--curve", required=True, help="CSV file; the row with sparsity 0 is the dense model"),
    arg("--eps", type=tolerance, default=DEFAULT_EPS,
        help=f"tolerance below dense accuracy, a fraction ({DEFAULT_EPS} = 1 accuracy point)"),
], context=False)
def essential_cmd(args, ctx) -> dict:
    import pandas as pd

    essential_sparsity = _essential_module().essential_sparsity

    path = Path(args.curve)
    if not path.is_file():
        raise LotusError(f"curve file {path} does not exist; write a CSV with columns sparsity,accuracy")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LotusError(f"{path} is not a readable CSV ({str(exc).splitlines()[0][:100]})") from None
    missing = {"sparsity", "accuracy"} - set(frame.columns)
    if missing:
        raise LotusError(f"{path} lacks column(s) {', '.join(sorted(missing))}; it needs sparsity,accuracy")
    if frame[["sparsity", "accuracy"]].isna().any().any() or not pd.api.types.is_numeric_dtype(frame["sparsity"]) \
            or not pd.api.types.is_numeric_dtype(frame["accuracy"]):
        raise LotusError(f"{path} has non-numeric or empty sparsity/accuracy values")
    dense = frame.loc[frame["sparsity"] == 0, "accuracy"]
    if dense.empty:
        raise LotusError(f"{path} has no row with sparsity 0 (the dense model's accuracy)")
    if frame["accuracy"].max() > 1.0:
        raise LotusError(f"{path} has accuracies above 1; give fractions in [0, 1], not percentages")
    ess = essential_sparsity(frame, float(dense.iloc[0]), args.eps)
    return {"essential_sparsity": ess.essential_sparsity, "bracket": list(ess.bracket), "monotone": ess.monotone,
            "dense_accuracy": float(dense.iloc[0]), "eps": args.eps}


@command("sensitivity", "accuracy drop when one layer alone is pruned", [
    arg("--sparsities", default="0.5,0.7,0.9"),
    arg("--limit", type=positive_int, default=1000),
    arg("--seed", type=seed, default=0),
])
def sensitivity_cmd(args, ctx) -> dict:
    from ..pruning.sensitivity import SensitivityConfig, run_sensitivity
    from ..pruning.sweep import parse_sparsities

    table = run_sensitivity(ctx, SensitivityConfig(parse_sparsities(args.sparsities), args.limit, args.seed),
                            on_progress=_progress)
    return {"drop": {layer: {str(s): v for s, v in row.items()} for layer, row in table.iterrows()}}

