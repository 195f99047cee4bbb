"""Sparsity-accuracy curves and the essential-sparsity turning point.

"The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal et al., NeurIPS
2023): with dense accuracy A and tolerance eps (absolute, default 1 point = 0.01), the
essential sparsity is the highest evaluated sparsity before the first one whose accuracy
falls below A - eps. After a coarse grid, :func:`sweep` bisects inside the bracket
[last within tolerance, first below], on the ``resolution`` grid, until it is no wider than
``resolution``: the point is located with a handful of evaluations instead of a fine grid.

Every point is an evaluation stored under its own configuration (method, sparsity, scope,
test subset, fine-tuning), so a point computed by one sweep, by ``prune`` or by the
dashboard is never computed again, and an interrupted sweep resumes where it stopped.

``controls`` adds the sanity checks of :mod:`lotus_core.pruning.controls` beside every method:
the curve ``"snip+shuffle"`` is SNIP's mask at each sparsity with its kept positions shuffled
within each layer, ``"snip+reinit"`` the same mask on re-initialised scoped weights (fine-tuned
with the sweep's ``finetune_steps``, like every point).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..core.context import Context
from ..data import subset_indices, to_model_input
from ..core.errors import LotusError
from ..training.evaluate import DEFAULT_LIMIT
from ..training.finetune import finetune
from . import PRUNERS, Mask, get_pruner, masker
from .controls import check_control, reinit_, shuffled
from .ranking import MaskFn, check_sparsity
from .scope import scoped_parameters
from ..results.runs import Run, run_experiment
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment

DEFAULT_GRID = tuple(round(0.1 * i, 2) for i in range(10))


@dataclass(frozen=True)
class SweepConfig:
    """A sparsity-accuracy sweep. Sparsities and accuracies are fractions in [0, 1]."""

    methods: tuple[str, ...] = ("omp",)  # keys of PRUNERS
    sparsities: tuple[float, ...] = DEFAULT_GRID  # the coarse grid
    limit: int = DEFAULT_LIMIT  # test images (fixed seeded subset)
    seed: int = 0  # test subset and random pruning
    scope: str = "blocks"  # which weights are pruned (pruning.scope.SCOPES)
    refine: bool = False  # bisect the turning point's bracket after the grid
    resolution: float = 0.01  # refine until the bracket is at most this wide
    eps: float = 0.01  # tolerance below dense accuracy (absolute fraction)
    finetune_steps: int = 0  # fine-tune each pruned model for this many steps before evaluating
    finetune_lr: float = 1e-4  # peak AdamW learning rate of that fine-tuning (cosine decay)
    calib_size: int = 128  # training images for the calibrated methods (wanda, sparsegpt, snip, grasp)
    n: int = 2  # N of the N:M pattern of nm and sparsegpt-nm (NMOptions; 1 - n/m is their fixed sparsity)
    m: int = 4  # M of that N:M pattern (NMOptions)
    damp: float = 0.01  # sparsegpt: dampening, fraction of the mean Hessian diagonal (SparseGPTOptions)
    blocksize: int = 128  # sparsegpt: columns per lazy-update block (SparseGPTOptions)
    rounds: int = 100  # synflow: score-prune rounds (SynFlowOptions)
    controls: tuple[str, ...] = ()  # sanity checks drawn beside every method: shuffle, reinit
    bf16: bool = True  # bf16 autocast where fast (False: fp32 evaluation)
    stop_at_drop: bool = False  # end each method's grid at its first point below dense - eps (enough for the turning point)


@dataclass
class Essential:
    """The turning point of one curve."""

    essential_sparsity: float  # highest sparsity before the first drop below A - eps
    bracket: tuple[float, float | None]  # [last within tolerance, first below] (None: never below)
    monotone: bool  # accuracy never rises as sparsity grows
    recovers: bool  # some sparsity past the first drop is back within tolerance (the rule ignores it)
    evaluations: int  # points on the curve (dense excluded)

    def to_dict(self) -> dict:
        return {"essential_sparsity": self.essential_sparsity, "bracket": list(self.bracket),
                "monotone": self.monotone, "recovers": self.recovers, "evaluations": self.evaluations}


def essential_sparsity(points: pd.DataFrame | Iterable[tuple[float, float]], dense_accuracy: float,
                       eps: float = 0.01) -> Essential:
    """The essential-sparsity turning point of a curve of (sparsity, accuracy) points.

    ``points`` is a DataFrame with columns sparsity, accuracy or (sparsity, accuracy) pairs.
    Points at sparsity 0 count as dense and are not part of the curve. Accuracies and ``eps``
    are absolute fractions.
    """
    if isinstance(points, pd.DataFrame):
        points = zip(points["sparsity"], points["accuracy"])
    curve = sorted((float(s), float(a)) for s, a in points if float(s) > 0)
    floor = dense_accuracy - eps
    lo, hi = 0.0, None
    for s, a in curve:
        if a < floor - 1e-12:
            hi = s
            break
        lo = s
    accs = [a for _, a in curve]
    monotone = all(b <= a + 1e-12 for a, b in zip(accs, accs[1:]))
    recovers = hi is not None and any(s > hi and a >= floor - 1e-12 for s, a in curve)
    return Essential(lo, (lo, hi), monotone, recovers, len(curve))


def parse_sparsities(text: str) -> tuple[float, ...]:
    """``"0:0.9:0.1"`` (start:stop:step, stop included when on the grid) or ``"0.1,0.5,0.7"``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            count = int(round((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 6) for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LotusError(f"cannot read sparsities {text!r}; use start:stop:step (0:0.9:0.1) or a list (0.1,0.5)") from None
    for v in values:
        check_sparsity(v)
    if not values:
        raise LotusError(f"no sparsities in {text!r}")
    return tuple(sorted(set(values)))


def curve_name(method: str, control: str | None = None) -> str:
    """The label of ``method``'s curve, or of its ``control`` (``"snip+shuffle"``)."""
    return f"{method}+{control}" if control else method


def split_curve(curve: str) -> tuple[str, str | None]:
    """``(method, control or None)`` of a curve label (inverse of :func:`curve_name`)."""
    method, _, control = curve.partition("+")
    return method, control or None


def curves(config: SweepConfig) -> list[str]:
    """Every curve a sweep draws: each method, then each method's controls."""
    for control in config.controls:
        check_control(control)
    return [curve_name(m, c) for m in config.methods for c in (None, *config.controls)]


class PointEvaluator:
    """Evaluates pruned versions of ``ctx.model`` with one reusable working copy.

    The working copy's scoped weights are reset from the base model before each mask is
    applied, so a sweep keeps a single extra model alive, never one per sparsity.
    """

    def __init__(self, ctx: Context, config: SweepConfig):
        self.ctx, self.config = ctx, config
        self.work = copy.deepcopy(ctx.model)
        self.base_params = scoped_parameters(ctx.model, config.scope)
        self.work_params = scoped_parameters(self.work, config.scope)
        self._calib: tuple[torch.Tensor, torch.Tensor] | None = None
        self._maskers: dict[str, MaskFn] = {}  # method -> sparsity -> Mask (scores ranked once per sweep)
        self._reinit: dict[str, torch.Tensor] | None = None  # the reinit control's scoped weights

    def calib(self) -> torch.Tensor:
        """The calibration images (``calib_size`` seeded training images) as model input."""
        return self.calib_batch()[0]

    def calib_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The calibration images as model input and their labels."""
        if self._calib is None:
            idx = subset_indices(len(self.ctx.train), self.config.calib_size, self.config.seed)
            self._calib = (to_model_input(self.ctx.train.images[idx], self.ctx.data_config), self.ctx.train.labels[idx])
        return self._calib

    def mask(self, method: str, sparsity: float) -> Mask:
        """The mask of ``method`` at ``sparsity``; the method ranks the base weights once per evaluator."""
        if method not in self._maskers:
            calib, labels = self.calib_batch() if get_pruner(method).needs_calibration else (None, None)
            self._maskers[method] = masker(self.ctx.model, method, self.config.scope, calib=calib, labels=labels,
                                           seed=self.config.seed, **self.options(method))
        return self._maskers[method](sparsity)

    def reinit_weights(self) -> dict[str, torch.Tensor]:
        """The scoped weights re-initialised once per evaluator (seeded), for the reinit control."""
        if self._reinit is None:
            self._reinit = {n: p.detach().clone() for n, p in self.base_params.items()}
            reinit_(self._reinit, self.config.seed)
        return self._reinit

    def pruned_model(self, mask: Mask) -> nn.Module:
        """The working copy with ``mask`` applied to the base weights (or to ``mask.weights`` when it
        carries its own: SparseGPT's reconstruction, the reinit control), fine-tuned when the config says so."""
        base = mask.weights if mask.weights is not None else self.base_params
        with torch.no_grad():
            for name, p in self.work_params.items():
                p.copy_(base[name] * mask[name])
        if self.config.finetune_steps:
            model = copy.deepcopy(self.work)
            finetune(model, mask, self.ctx.train, self.ctx.data_config, self.config.finetune_steps,
                     lr=self.config.finetune_lr, seed=self.config.seed)
            return model
        return self.work

    def options(self, method: str) -> dict:
        """``method``'s own options (Pruner.options) as this sweep sets them (empty for a method without any)."""
        return get_pruner(method).option_values(dataclasses.asdict(self.config))

    def effective_sparsity(self, method: str, requested: float) -> float:
        """The sparsity ``method`` reaches when ``requested`` is asked (N:M: its fixed 1 - N/M)."""
        return get_pruner(method).effective_sparsity(requested, dataclasses.asdict(self.config))

    def point_config(self, curve: str, sparsity: float) -> dict:
        """The key of one point (beside model and dataset): everything that changes its accuracy."""
        c = self.config
        method, control = split_curve(curve)
        extra = self.options(method)
        extra.update({"control": check_control(control)} if control else {})
        extra.update({"finetune_steps": c.finetune_steps, "finetune_lr": c.finetune_lr} if c.finetune_steps else {})
        extra.update({} if c.bf16 else {"precision": "fp32"})
        return dict(method=method, sparsity=round(sparsity, 6), scope=c.scope, limit=c.limit, seed=c.seed, **extra)

    def evaluate(self, curve: str, sparsity: float, refresh: bool = False) -> dict:
        """Accuracy of the ``curve`` (a method, or ``method+control``) at ``sparsity``, from the store
        when already computed (unless ``refresh``)."""
        method, control = split_curve(curve)

        def compute(ctx: Context, _: dict, run: Run) -> dict:
            mask = self.mask(method, sparsity)
            if control == "shuffle":
                mask = shuffled(mask, self.config.seed)
            elif control == "reinit":
                mask = Mask(mask, weights=self.reinit_weights())
            res = self.ctx.evaluate(self.pruned_model(mask), limit=self.config.limit, seed=self.config.seed,
                                    bf16=self.config.bf16)
            return {"method": curve, "sparsity": sparsity, "sparsity_reached": mask.sparsity,
                    "accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n}

        summary = run_experiment(self.ctx, "prune-eval", self.point_config(curve, sparsity), compute, refresh=refresh)
        return {k: v for k, v in summary.items() if k != "run_id"}


def sweep(ctx: Context, config: SweepConfig, run: Run, refresh: bool = False) -> dict:
    """Experiment: the coarse grid for every method, then (``refine``) bisection of each bracket.

    ``refresh`` recomputes points that other runs already stored (for benchmarks and ``--no-cache``).
    """
    for method in config.methods:
        get_pruner(method)
    names = curves(config)
    dense = ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=config.bf16)
    evaluator = PointEvaluator(ctx, config)
    plan = [(c, s) for c in names for s in _grid(c, config)]
    done = 0

    def point(method: str, s: float, refined: bool) -> dict:
        nonlocal done
        key = f"{method}@{s:.4f}"
        data = run.get(key)
        if data is None:
            data = {**evaluator.evaluate(method, s, refresh), "refined": refined}
            run.point(key, data)
        done += 1
        run.progress(done=done, planned=max(len(plan), done), method=method, sparsity=s, accuracy=data["accuracy"])
        run.check()
        return data

    for method in names:
        for s in _grid(method, config):
            if point(method, s, False)["accuracy"] < dense["accuracy"] - config.eps - 1e-12 and config.stop_at_drop:
                break
    essential = {}
    for method in names:
        curve = lambda: [(p["sparsity"], p["accuracy"]) for p in run.points().values() if p["method"] == method]  # noqa: E731
        ess = essential_sparsity(curve(), dense["accuracy"], config.eps)
        base, control = split_curve(method)
        while config.refine and control is None and PRUNERS[base].fixed_sparsity(dataclasses.asdict(config)) is None \
                and ess.bracket[1] is not None \
                and ess.bracket[1] - ess.bracket[0] > config.resolution + 1e-9:
            mid = _midpoint(ess.bracket[0], ess.bracket[1], config.resolution)
            if mid in (ess.bracket[0], ess.bracket[1]):
                break
            point(method, mid, True)
            ess = essential_sparsity(curve(), dense["accuracy"], config.eps)
        essential[method] = ess.to_dict()
    return {"dense": dense, "essential": essential}


def _midpoint(lo: float, hi: float, resolution: float) -> float:
    """The middle of [lo, hi] snapped to the ``resolution`` grid, so refined points are the fine
    grid's own points (a bisection ends on the same turning point as a full fine grid of a
    monotone curve)."""
    return round(round((lo + hi) / 2 / resolution) * resolution, 6)


def _grid(curve: str, config: SweepConfig) -> Sequence[float]:
    fixed = PRUNERS[split_curve(curve)[0]].fixed_sparsity(dataclasses.asdict(config))
    if fixed is not None:  # N:M: one point at 1 - N/M
        return [fixed]
    return [s for s in config.sparsities if s > 0]


@dataclass
class SweepResult:
    frame: pd.DataFrame  # method, sparsity, sparsity_reached, accuracy, ci_low, ci_high, n, refined
    dense: dict
    essential: dict[str, dict]
    run_id: str
    config: SweepConfig = field(repr=False, default=None)


def run_sweep(ctx: Context, config: SweepConfig, on_progress: Callable[[dict], None] | None = None,
              refresh: bool = False) -> SweepResult:
    """Run (or read back) a stored sweep and return its curve as a table."""
    fn = functools.partial(sweep, refresh=True) if refresh else sweep
    summary = run_experiment(ctx, "sweep", config, fn, on_progress=on_progress, refresh=refresh)
    return sweep_result(ctx, summary, config)


def sweep_result(ctx: Context, summary: dict, config: SweepConfig | None = None) -> SweepResult:
    points = ctx.store.points(summary["run_id"])
    cols = ["method", "sparsity", "sparsity_reached", "accuracy", "ci_low", "ci_high", "n", "refined"]
    frame = pd.DataFrame(list(points.values()), columns=cols).sort_values(["method", "sparsity"]).reset_index(drop=True)
    return SweepResult(frame, summary["dense"], summary["essential"], summary["run_id"], config)


def layer_sparsity_table(mask: Mask) -> pd.DataFrame:
    """Per-layer sparsity of a mask: layer, block index, kind (qkv/proj/fc1/fc2/head), numel, sparsity."""
    rows = []
    for name, t in mask.items():
        parts = name.split(".")
        block = int(parts[1]) if parts[0] == "blocks" and parts[1].isdigit() else None
        kind = parts[-2] if len(parts) >= 2 else name
        rows.append({"layer": name, "block": block, "kind": kind, "numel": t.numel(),
                     "sparsity": float((~t).sum()) / t.numel()})
    return pd.DataFrame(rows)


def prune_eval_headline(s: dict) -> Headline:
    """Headline of one stored sweep point."""
    return Headline(s["accuracy"], s["sparsity_reached"],
                    f"{s['method']} at {pct(s['sparsity_reached'])}: {pct(s['accuracy'])}")


def sweep_headline(s: dict) -> Headline:
    """Headline of a stored sweep: dense accuracy and each method's essential sparsity."""
    ess = {m: e["essential_sparsity"] for m, e in s["essential"].items()}
    first = next(iter(ess.values()), None)
    return Headline(s["dense"]["accuracy"], first, f"dense {pct(s['dense']['accuracy'])}; essential sparsity "
                    + ", ".join(f"{m} {pct(v)}" for m, v in ess.items()))


def sweep_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against sparsity, one series per method, each starting at the dense model."""
    rows = [{"series": p["method"], "axis": "sparsity", "x": p["sparsity"], "accuracy": p["accuracy"]}
            for p in points.values() if "method" in p]
    if summary and rows:  # every method starts at the dense model
        rows += [{"series": m, "axis": "sparsity", "x": 0.0, "accuracy": summary["dense"]["accuracy"]}
                 for m in dict.fromkeys(r["series"] for r in rows)]
    return rows


register_experiment(ExperimentSpec("prune-eval", headline=prune_eval_headline))  # PointEvaluator.evaluate stores it
register_experiment(ExperimentSpec("sweep", SweepConfig, sweep, sweep_headline, sweep_curve, job=True))
