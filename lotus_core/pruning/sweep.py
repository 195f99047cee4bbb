"""Sparsity-accuracy curves and the essential-sparsity turning point.

"The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal et al., NeurIPS
2023): the essential sparsity is the highest evaluated sparsity before the first one whose
accuracy falls below A - eps (the rule is :func:`lotus_core.pruning.essential.essential_sparsity`).

Two searches (``SweepConfig.search``):

- ``grid``: every sparsity of the grid is evaluated (the curve); with ``refine``, the bracket
  [last within tolerance, first below] is then bisected on the ``resolution`` grid.
- ``bisect``: the turning point alone, by bisection on the ``resolution`` grid over the whole
  range from the start (about log2(range / resolution) + 1 points), each point evaluated only
  until "within tolerance?" is certain (:func:`lotus_core.training.evaluate.decide`); then the
  coarse grid past the point is checked, as cheaply, for accuracy coming back within tolerance
  (``recovers``: the curve is not monotone). The answer is the one a full fine grid of full
  evaluations gives on a curve that stays below once it drops. Points decided early store no
  accuracy (only its bounds, ``acc_low``/``acc_high``, and ``early``), so no chart draws them.
- ``scout``: the same bisection, but each point is first decided from a budget of the dense
  model's hardest images (twice the wrong images a "below" needs), where "below" is certain and
  "within" only likely; then only the bracket's low end is decided from every image it needs
  (:func:`lotus_core.pruning.essential.scouted_turning_point`; a scout that erred widens the budget).
  Same answer as ``bisect`` on a curve that stays below once it drops; open scouts are stored
  (``open``) but are in no curve or table. The dashboard's search.

Two protocols (:data:`PROTOCOLS`): ``lotus`` prunes the model as it is (a model already
trained or fine-tuned on the dataset; what LOTUS does) and draws its accuracy as the dense
line; ``essential`` is the Essential Sparsity paper's: the mask comes from the **pre-trained**
weights (a new head is fine), every masked model is fine-tuned with the same recipe and
budget as the dense reference (:class:`~lotus_core.training.finetune.FinetuneConfig`), and
the dense line is that fine-tuned dense model's accuracy.

Every point is an evaluation stored under its own configuration (method, sparsity, scope,
test subset, fine-tuning; a decision also under its threshold), so a point computed by one
sweep, by ``prune`` or by the dashboard is never computed again, and an interrupted sweep
resumes where it stopped.

``controls`` adds the sanity checks of :mod:`lotus_core.pruning.controls` beside every method:
the curve ``"snip+shuffle"`` is SNIP's mask at each sparsity with its kept positions shuffled
within each layer, ``"snip+reinit"`` the same mask on re-initialised scoped weights (fine-tuned
with the sweep's ``finetune_steps``, like every point).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..core.context import Context
from ..core.device import cpu_slot, decision_batch_size
from ..data import subset_indices, to_model_input
from ..core.errors import LotusError
from .essential import (Essential, bisect_decisions, bisect_turning_point, cost_split, essential_sparsity,
                        required_correct, resolution_grid, scout_budgets, scouted_turning_point, within_tolerance)
from ..training.evaluate import DEFAULT_LIMIT, MIN_BATCH, Decision, decide, decision, predict, wilson_interval
from ..training.finetune import FinetuneConfig, fine_tuned_model, finetune, run_finetune
from . import PRUNERS, Mask, get_pruner, masker
from .controls import check_control, reinit_, shuffled
from .ranking import MaskFn, check_sparsity
from .scope import scoped_parameters
from ..results.executors import get_executor, track
from ..results.runs import Run, run_experiment, run_id_for, stored_summary
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment

__all__ = ["Essential", "essential_sparsity"]  # the rule, re-exported where sweeps use it

SEARCHES = {"grid": "every grid sparsity (the curve), then with refine the bracket bisected",
            "bisect": "the turning point alone: bisection on the resolution grid from the start, early-decided points",
            "scout": "bisect, most points decided from the dense model's hardest images and only the answer's "
                     "bracket from every image it needs (same answer, fewer images)"}
DEFAULT_GRID = tuple(round(0.1 * i, 2) for i in range(10))
MAX_GRID = 1000  # the most sparsities a grid may hold
PROTOCOLS: dict[str, str] = {
    "lotus": "prune the model as it is (trained or fine-tuned on this dataset); dense line: that model",
    "essential": "Essential Sparsity: mask from the pre-trained weights, each masked model fine-tuned with the "
                 "dense reference's recipe; dense line: the fine-tuned dense model",
}


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
    eps: float = 0.01  # tolerance below dense accuracy, a fraction (0.01 = 1 accuracy point)
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
    protocol: str = "lotus"  # lotus: prune the model as it is; essential: pre-trained masks, each fine-tuned (PROTOCOLS)
    recipe: FinetuneConfig | None = None  # the essential protocol's fine-tuning recipe (None: FinetuneConfig())
    search: str = "grid"  # a key of SEARCHES; "bisect"/"scout" search (0, max(sparsities)], check sparsities past it
    early: bool = True  # bisect, scout: evaluate each point only until within/below is certain (same answer)

    @property
    def needs_trained_head(self) -> bool:
        """Only the essential protocol trains the head (of every point); ``lotus`` uses it as it is."""
        return self.protocol != "essential"

    @property
    def revision(self) -> dict[str, int]:
        """The corrected methods of this sweep with their ``Pruner.revision`` (in the run's key when non-empty:
        a sweep stored under a method's earlier algorithm is never served; other sweeps keep their keys)."""
        return {m: PRUNERS[m].revision for m in self.methods if m in PRUNERS and PRUNERS[m].revision}

    def finetune_recipe(self) -> FinetuneConfig:
        """The essential protocol's recipe, evaluated on this sweep's test subset and precision."""
        return dataclasses.replace(self.recipe or FinetuneConfig(), limit=self.limit, bf16=self.bf16)

    def __post_init__(self) -> None:  # refused before any run is recorded (no 'failed' rows for bad input)
        if isinstance(self.recipe, dict):  # rebuilt from JSON by the job worker
            object.__setattr__(self, "recipe", FinetuneConfig(**self.recipe))
        check_sweep(self)


def check_sweep(c: SweepConfig) -> None:
    """Raise LotusError for a sweep no run can use: tolerance, resolution, counts and sparsities out of range."""
    if not (math.isfinite(c.eps) and 0 <= c.eps <= 1):
        raise LotusError(f"eps {c.eps} is outside [0, 1]; give an absolute tolerance such as 0.01")
    if not (math.isfinite(c.resolution) and 0 < c.resolution <= 0.5):
        raise LotusError(f"resolution {c.resolution} is outside (0, 0.5]; give a sparsity step such as 0.01")
    if c.finetune_steps < 0 or c.limit < 1 or c.calib_size < 1:
        raise LotusError(f"finetune_steps {c.finetune_steps} must be at least 0, limit {c.limit} and calib_size "
                         f"{c.calib_size} at least 1")
    if not (math.isfinite(c.finetune_lr) and 0 < c.finetune_lr <= 10):
        raise LotusError(f"finetune_lr {c.finetune_lr} is outside (0, 10]")
    if not 1 <= c.n <= c.m:
        raise LotusError(f"N:M pattern {c.n}:{c.m} needs 1 <= N <= M (2:4 keeps 2 of every 4 weights)")
    if c.search not in SEARCHES:
        raise LotusError(f"unknown search {c.search!r}; choose one of {', '.join(SEARCHES)}")
    if c.protocol not in PROTOCOLS:
        raise LotusError(f"unknown protocol {c.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    for s in c.sparsities:
        check_sparsity(s)


def parse_sparsities(text: str) -> tuple[float, ...]:
    """``"0:0.9:0.1"`` (start:stop:step, stop included when on the grid) or ``"0.1,0.5,0.7"``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not (step > 0 and math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)):
                raise ValueError
            count = int(round((stop - start) / step + 1e-9)) + 1
            if count > MAX_GRID:
                raise LotusError(f"sparsities {text!r} make {count:,} points; use a step giving at most {MAX_GRID}")
            values = [round(start + i * step, 6) for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except (ValueError, OverflowError):
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
        if config.needs_trained_head:
            ctx.require_trained_head("pruning it")
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
        if self.config.protocol == "essential":  # the dense reference's recipe, mask held fixed
            return fine_tuned_model(self.ctx, self.config.finetune_recipe(), mask=mask)
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

    def point_config(self, method: str, sparsity: float) -> dict:
        return point_config(self.config, method, sparsity)

    def curve_mask(self, curve: str, sparsity: float) -> Mask:
        """The mask of the ``curve`` (a method, or ``method+control``) at ``sparsity``."""
        method, control = split_curve(curve)
        mask = self.mask(method, sparsity)
        if control == "shuffle":
            mask = shuffled(mask, self.config.seed)
        elif control == "reinit":
            mask = Mask(mask, weights=self.reinit_weights())
        return mask

    def compute(self, curve: str, sparsity: float, begun: tuple[list[int], int, int] | None = None) -> dict:
        """The point of the ``curve`` (a method, or ``method+control``) at ``sparsity``, computed (never read
        from the store). ``begun`` = (order, correct, seen): an early decision of this point saw the first
        ``seen`` images in ``order`` and found ``correct`` of them right; only the images after them are
        evaluated (a point decided early is continued, never restarted; a prediction does not depend on the
        batch its image is in, so the count is the full evaluation's)."""
        mask = self.curve_mask(curve, sparsity)
        c = self.config
        if begun is None:
            res = self.ctx.evaluate(self.pruned_model(mask), limit=c.limit, seed=c.seed, bf16=c.bf16)
            correct, n = round(res.accuracy * res.n), res.n
        else:
            order, correct, seen = begun
            idx = subset_indices(len(self.ctx.test), c.limit, c.seed)[torch.as_tensor(order, dtype=torch.long)][seen:]
            preds = predict(self.pruned_model(mask), self.ctx.test.images[idx], self.ctx.data_config, bf16=c.bf16)
            correct, n = correct + int((preds == self.ctx.test.labels[idx]).sum()), len(order)
        ci = wilson_interval(correct, n)
        return {"method": curve, "sparsity": sparsity, "sparsity_reached": mask.sparsity,
                "accuracy": correct / n, "ci_low": ci[0], "ci_high": ci[1], "n": n, "correct": correct}

    def prefix_key(self, curve: str, sparsity: float, ordered: bool) -> dict:
        """The key of the point's furthest early decision in the hard-first order (``ordered``) or subset
        order: what it saw does not depend on the threshold asked, so every tolerance reuses it."""
        return {**self.point_config(curve, sparsity), **({"order": "hard-first"} if ordered else {})}

    def prefix(self, curve: str, sparsity: float, ordered: bool) -> dict | None:
        """The stored furthest decision prefix of the point (correct, seen, n, sparsity_reached), or None."""
        return stored_summary(self.ctx, "prune-prefix", self.prefix_key(curve, sparsity, ordered))

    def keep_prefix(self, point: dict, ordered: bool) -> None:
        """Store ``point``'s counts as its furthest prefix when it saw more images than the stored one."""
        known = self.prefix(point["method"], point["sparsity"], ordered)
        if known is None or point["seen"] > known["seen"]:
            data = {k: point[k] for k in ("method", "sparsity", "sparsity_reached", "n", "correct", "seen")}
            run_experiment(self.ctx, "prune-prefix", self.prefix_key(point["method"], point["sparsity"], ordered),
                           lambda ctx, _, run: data, refresh=True)

    def evaluate(self, method: str, sparsity: float, refresh: bool = False) -> dict:
        """Accuracy of ``method`` at ``sparsity``, from the store when already computed (unless ``refresh``)."""
        summary = run_experiment(self.ctx, "prune-eval", self.point_config(method, sparsity),
                                 lambda ctx, _, run: self.compute(method, sparsity), refresh=refresh)
        return {k: v for k, v in summary.items() if k != "run_id"}

    def decide(self, curve: str, sparsity: float, required: int, refresh: bool = False,
               order: Sequence[int] | None = None, budget: int | None = None, start: dict | None = None) -> dict:
        """Are at least ``required`` test images right with ``curve`` at ``sparsity``? A sweep point
        (:func:`complete_point` fields) evaluated only until that is certain, taking the images in
        ``order`` (the dense model's hard-first order, :meth:`Context.hard_first_order`; default: subset order).

        ``budget`` stops after that many images even when the answer is still open (the point then has
        ``open`` True and bounds on both sides of the threshold: a scout of the scouted search); ``start``
        (such an open point) goes on from where it stopped, evaluating only the images after it.

        A stored full evaluation of the point answers it without computing. Otherwise the
        decision is stored under the point's configuration plus ``required``, the order, the budget and
        where it started (kind ``prune-decide``); one that needed every image is the full evaluation and
        is stored as that too.
        """
        full = self.point_config(curve, sparsity)
        stored = None if refresh else stored_summary(self.ctx, "prune-eval", full)
        if stored is not None:
            return complete_point({k: v for k, v in stored.items() if k != "run_id"})
        c = self.config

        begun = None if start is None else Decision(None, start["correct"], start["seen"], start["n"], required)

        def key_for(begun: Decision | None) -> dict:
            # the order, the batches, the budget and where it began decide which images a decision saw (its
            # stored counts), not its answer
            batches = {"batches": [MIN_BATCH, decision_batch_size(self.ctx.device,
                                                                  self.ctx.data_config["input_size"])]}
            return {**full, "required": required, **({"order": "hard-first"} if order is not None else {}),
                    **batches, **({"budget": budget} if budget is not None else {}),
                    **({"after": begun.seen} if begun else {})}

        # measured once: any earlier decision of this point in this order, whatever its threshold, is gone on from
        prefix = None if refresh or stored_summary(self.ctx, "prune-decide", key_for(begun)) is not None \
            else self.prefix(curve, sparsity, order is not None)
        if prefix is not None and prefix["seen"] > (begun.seen if begun else 0):
            begun = Decision(None, prefix["correct"], prefix["seen"], prefix["n"], required)
            settled = decision(begun.correct, begun.seen, begun.n, required)
            if settled is not None or (budget is not None and begun.seen >= min(budget, begun.n)):
                low, high = Decision(settled, begun.correct, begun.seen, begun.n, required).bounds
                return self._decided({**{k: prefix[k] for k in ("method", "sparsity", "sparsity_reached", "n",
                                                                  "correct", "seen")}, "required": required,
                                      "early": begun.seen < begun.n, "open": settled is None,
                                      "acc_low": low, "acc_high": high}, full, refresh)

        def compute(ctx, _, run) -> dict:
            mask = self.curve_mask(curve, sparsity)
            d = decide(self.pruned_model(mask), self.ctx.test, self.ctx.data_config, required, limit=c.limit,
                       seed=c.seed, bf16=c.bf16, order=order, budget=budget, start=begun)
            return {"method": curve, "sparsity": sparsity, "sparsity_reached": mask.sparsity, "n": d.n,
                    "correct": d.correct, "seen": d.seen, "required": required, "early": d.early,
                    "open": d.above is None, "acc_low": d.bounds[0], "acc_high": d.bounds[1]}

        out = run_experiment(self.ctx, "prune-decide", key_for(begun), compute, refresh=refresh)
        out = {"open": False, **{k: v for k, v in out.items() if k != "run_id"}}
        self.keep_prefix(out, order is not None)
        return self._decided(out, full, refresh)

    def _decided(self, out: dict, full: dict, refresh: bool) -> dict:
        """The sweep point of a decision's counts ``out``; one that saw every image is also stored as the
        point's full evaluation (``prune-eval``)."""
        curve, sparsity = out["method"], out["sparsity"]
        if out["early"] or out["open"]:
            return {**out, "accuracy": None, "ci_low": None, "ci_high": None}
        n, correct = out["n"], out["correct"]
        ci = wilson_interval(correct, n)
        point = {"method": curve, "sparsity": sparsity, "sparsity_reached": out["sparsity_reached"],
                 "accuracy": correct / n, "ci_low": ci[0], "ci_high": ci[1], "n": n, "correct": correct}
        run_experiment(self.ctx, "prune-eval", full, lambda ctx, _, run: point, refresh=refresh)
        return complete_point(point)


def point_config(config: SweepConfig, curve: str, sparsity: float) -> dict:
    """The key of one point of a curve (a method, or ``method+control``) beside model and dataset:
    everything that changes its accuracy."""
    c = config
    method, control = split_curve(curve)
    extra = get_pruner(method).option_values(dataclasses.asdict(c))
    extra.update({"control": check_control(control)} if control else {})
    extra.update({"finetune_steps": c.finetune_steps, "finetune_lr": c.finetune_lr} if c.finetune_steps else {})
    extra.update({} if c.bf16 else {"bf16": False})
    if c.protocol == "essential":
        extra.update({"protocol": "essential", "recipe": dataclasses.asdict(c.finetune_recipe())})
    return dict(method=method, sparsity=round(sparsity, 6), scope=c.scope, limit=c.limit, seed=c.seed, **extra)


def point_state(ctx: Context, config: SweepConfig) -> PointEvaluator:
    """Executor set-up of a sweep: one evaluator (working copy, rankings) per process."""
    return PointEvaluator(ctx, config)


def point_unit(evaluator: PointEvaluator, unit: tuple[str, float, tuple | None]) -> dict:
    """Executor unit of a sweep: one (method, sparsity, begun) point, computed (going on from ``begun``, an
    early decision's counts, when given)."""
    return evaluator.compute(*unit)


class SweepPoints:
    """The driver side of a sweep: serves stored points and sends the missing ones to ``ctx.executor``.

    Every result is stored the moment it arrives, as the run's point and as the reusable
    ``prune-eval`` result. With ``cut`` (stop-at-drop), each method's curve is written in grid
    order and ends at its first point below ``cut``: points past it that arrive from other
    workers are kept as ``prune-eval`` results only, and those not yet arrived are cancelled.
    """

    def __init__(self, ctx: Context, config: SweepConfig, run: Run, refresh: bool):
        self.ctx, self.config, self.run, self.refresh = ctx, config, run, refresh
        needs_train = config.finetune_steps > 0 or config.protocol == "essential" \
            or any(get_pruner(m).needs_calibration for m in config.methods)
        self.pool = get_executor(ctx.executor).pool(point_state, ctx, config, train=needs_train)
        self.done = 0

    def begun(self, curve: str, sparsity: float) -> tuple[list[int], int, int] | None:
        """(order, correct, seen) of the point's stored early decision in the hard-first order, which its
        full evaluation goes on from (:meth:`PointEvaluator.compute`), or None."""
        if self.refresh or self.config.protocol != "lotus":
            return None
        prefix = stored_summary(self.ctx, "prune-prefix", {**point_config(self.config, curve, sparsity),
                                                           "order": "hard-first"})
        if prefix is None or prefix["seen"] >= prefix["n"]:
            return None
        c = self.config
        return self.ctx.hard_first_order(c.limit, c.seed, c.bf16), prefix["correct"], prefix["seen"]

    def evaluate(self, plan: Sequence[tuple[str, float]], refined: bool, cut: float | None = None) -> None:
        known: dict[str, dict] = {}  # key -> point data, stored or arrived, not yet on the curve
        todo: dict[str, tuple[str, float]] = {}
        for method, s in plan:
            key = _key(method, s)
            data = self.run.get(key)
            if data is None and not self.refresh:
                stored = stored_summary(self.ctx, "prune-eval", point_config(self.config, method, s))
                if stored is not None:
                    data = {**{k: v for k, v in stored.items() if k != "run_id"}, "refined": refined}
            if data is None:
                todo[key] = (method, s, self.begun(method, s))
            else:
                known[key] = data
        cursor = {m: 0 for m, _ in plan}  # cut: index of each method's next grid point to write
        grids = {m: [_key(m, s) for mm, s in plan if mm == m] for m in cursor}

        def write(key: str, data: dict) -> None:
            if self.run.get(key) != data:
                self.run.point(key, data)

        def advance(batch) -> None:
            for method, keys in grids.items():
                while cursor[method] < len(keys) and keys[cursor[method]] in known:
                    data = known[keys[cursor[method]]]
                    write(keys[cursor[method]], data)
                    cursor[method] += 1
                    if data["accuracy"] < cut:
                        batch.cancel(keys[cursor[method]:])
                        cursor[method] = len(keys)

        def arrived(key: str, data: dict) -> None:
            method, s, _ = todo[key]
            run_experiment(self.ctx, "prune-eval", point_config(self.config, method, s), lambda ctx, _, run: data,
                           refresh=True)
            known[key] = {**data, "refined": refined}

        if cut is None:
            for key, data in known.items():
                write(key, data)
        batch = self.pool.map(point_unit, todo)
        if cut is not None:
            advance(batch)
        self.done += len(plan) - len(todo)
        for outcome in track(self.run, batch, self.pool.slots, self.done, self.done + batch.pending,
                             describe=lambda p: {"method": p["method"], "sparsity": p["sparsity"],
                                                 "accuracy": p["accuracy"]}):
            arrived(outcome.key, outcome.result)
            if cut is None:
                write(outcome.key, known[outcome.key])
            else:
                advance(batch)
            self.done += 1


def complete_point(point: dict) -> dict:
    """A fully evaluated point with the fields every sweep point has: early and open (False), seen (= n)
    and acc_low = acc_high = accuracy (the bounds of a point decided early)."""
    correct = point.get("correct", round(point["accuracy"] * point["n"]))
    return {**point, "correct": correct, "seen": point["n"], "early": False, "open": False,
            "acc_low": point["accuracy"], "acc_high": point["accuracy"]}


def _bounds(points: Iterable[dict]) -> list[tuple[float, float, float]]:
    """(sparsity, acc_low, acc_high) of stored points (points stored before bounds existed: accuracy);
    open scouts, which decide nothing, are left out."""
    return [(p["sparsity"], p.get("acc_low", p["accuracy"]), p.get("acc_high", p["accuracy"])) for p in points
            if not p.get("open")]


def sweep(ctx: Context, config: SweepConfig, run: Run, refresh: bool = False) -> dict:
    """Experiment: per method, the grid (then with ``refine`` the bisected bracket), or with
    ``search="bisect"`` or ``"scout"`` the turning point by bisection from the start (see the module docstring).

    ``refresh`` recomputes points that other runs already stored (for benchmarks and ``--no-cache``).
    """
    if config.search not in SEARCHES:
        raise LotusError(f"unknown search {config.search!r}; choose one of {', '.join(SEARCHES)}")
    for method in config.methods:
        get_pruner(method)
    names = curves(config)
    with cpu_slot():  # the host's CPU budget (core/device.py); the grid's units take theirs one at a time
        dense = dense_reference(ctx, config)
    floor = dense["accuracy"] - config.eps
    bisect = config.search in ("bisect", "scout")

    def fixed(curve: str) -> float | None:
        return PRUNERS[split_curve(curve)[0]].fixed_sparsity(dataclasses.asdict(config))

    if bisect:  # the points one at a time, each decided as soon as it is certain (no executor: each depends on the last)
        with cpu_slot():  # held for the whole search: an interactive one is never preempted by background units
            evaluator = PointEvaluator(ctx, config)
            fine = resolution_grid(max(config.sparsities), config.resolution)
            n = dense["n"]
            required = required_correct(n, floor)
            # early decisions take the images hard first: "below" is certain after about twice the n - required + 1
            # wrong images it needs, "within" only after about all of them, so the bracket is cut nearer its top
            # (the same cut with early=False, so that both ask the same points)
            order = ctx.hard_first_order(config.limit, config.seed, config.bf16) \
                if config.early and config.protocol == "lotus" else None
            split = cost_split(n, min(n, max(MIN_BATCH, 2 * (n - required + 1))))  # a decision takes >= MIN_BATCH images
            # scouting: most points decided from a budget of the hardest images, only the answer's bracket from all it needs
            budgets = scout_budgets(n, required, MIN_BATCH) \
                if config.search == "scout" and config.early and order is not None else None
            planned = sum(1 if fixed(c) is not None else bisect_decisions(len(fine), split) + bool(budgets) for c in names)
            done = 0

            def measure(curve: str, s: float, budget: int | None, start: dict | None) -> dict:
                if config.early:
                    return evaluator.decide(curve, s, required, refresh, order, budget, start)
                return complete_point(evaluator.evaluate(curve, s, refresh))

            def point(curve: str, s: float, refined: bool, budget: int | None = None) -> dict:
                """The run's point at ``s``: stored, or decided now (from at most ``budget`` images, going on from
                an open one stored with a smaller budget)."""
                nonlocal done
                key = _key(curve, s)
                data = run.get(key)
                if data is None or (data.get("open") and (budget is None or data["seen"] < min(budget, n))):
                    data = {**measure(curve, s, budget if budget is None or budget < n else None, data),
                            "refined": refined}
                    run.point(key, data)
                done += 1
                run.progress(done=done, planned=max(planned, done), method=curve, sparsity=s, accuracy=data["accuracy"],
                             within=verdict(data))
                run.check()
                return data

            def verdict(data: dict) -> bool | None:
                """Is the point within tolerance? None for an open scout."""
                return None if data.get("open") else within_tolerance(_bounds([data])[0][1], floor)

            def within(curve: str, s: float, refined: bool) -> bool:
                return verdict(point(curve, s, refined))

            def ask(curve: str, s: float, budget: int | None) -> bool | None:
                return verdict(point(curve, s, True, budget))

            for curve in names:
                if fixed(curve) is not None:
                    within(curve, fixed(curve), False)
                    continue
                if budgets:
                    _, hi = scouted_turning_point(fine, lambda s, b: ask(curve, s, b), budgets, split)
                else:
                    _, hi = bisect_turning_point(fine, lambda s: within(curve, s, True), split)
                for s in config.sparsities:  # the coarse check: does accuracy come back within tolerance?
                    if hi is not None and s > hi:
                        point(curve, s, False)
    else:  # the grid through ctx.executor
        points = SweepPoints(ctx, config, run, refresh)  # its pool (and the model it holds) ends with this call
        points.evaluate([(c, s) for c in names for s in _grid(c, config)], refined=False,
                        cut=floor - 1e-12 if config.stop_at_drop else None)
    essential = {}
    for method in names:
        curve = lambda: [p for p in run.points().values() if p["method"] == method]  # noqa: E731
        ess = essential_sparsity(_bounds(curve()), dense["accuracy"], config.eps)
        base, control = split_curve(method)
        while config.refine and not bisect and control is None and fixed(method) is None \
                and ess.bracket[1] is not None \
                and ess.bracket[1] - ess.bracket[0] > config.resolution + 1e-9:
            mid = _midpoint(ess.bracket[0], ess.bracket[1], config.resolution)
            if mid in (ess.bracket[0], ess.bracket[1]):
                break
            points.evaluate([(method, mid)], refined=True)
            ess = essential_sparsity(_bounds(curve()), dense["accuracy"], config.eps)
        pts = curve()
        essential[method] = {**ess.to_dict(), "images": sum(p.get("seen", p["n"]) for p in pts),
                             "decided_early": sum(bool(p.get("early")) and not p.get("open") for p in pts),
                             **({"scouts_open": sum(bool(p.get("open")) for p in pts)} if config.search == "scout" else {})}
    return {"dense": dense, "essential": essential}


def _key(method: str, sparsity: float) -> str:
    return f"{method}@{sparsity:.4f}"


def dense_reference(ctx: Context, config: SweepConfig) -> dict:
    """The dense line: the model's own accuracy (``lotus``) or the stored fine-tune of it with the
    sweep's recipe (``essential``); a summary with accuracy, ci95 and n."""
    if config.protocol == "essential":
        ft = run_experiment(ctx, "finetune", config.finetune_recipe(), run_finetune)
        return {"accuracy": ft["accuracy"], "ci95": ft["ci95"], "n": config.limit, "finetune_run": ft["run_id"],
                "checkpoint": ft["checkpoint"], "accuracy_before": ft["accuracy_before"]}
    return ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=config.bf16)


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


FRAME_COLUMNS = ["method", "sparsity", "sparsity_reached", "accuracy", "ci_low", "ci_high", "n", "refined", "early",
                 "seen", "acc_low", "acc_high"]
"""A sweep table's columns: accuracy/ci are NaN where ``early`` (decided after ``seen`` of ``n`` images; the
full-subset accuracy lies in [acc_low, acc_high]); otherwise acc_low = acc_high = accuracy and seen = n."""


@dataclass
class SweepResult:
    frame: pd.DataFrame  # FRAME_COLUMNS, one row per point, sorted by method and sparsity
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
    """The stored sweep as a :class:`SweepResult`; its frame has a row per point, those decided
    early with a NaN accuracy (and ``early`` True), which charts leave out."""
    points = [p if "early" in p else complete_point(p) for p in ctx.store.points(summary["run_id"]).values()
              if not p.get("open")]  # an open scout decided nothing
    frame = pd.DataFrame(points, columns=FRAME_COLUMNS).sort_values(["method", "sparsity"]).reset_index(drop=True)
    frame[["accuracy", "ci_low", "ci_high"]] = frame[["accuracy", "ci_low", "ci_high"]].astype(float)
    return SweepResult(frame, summary["dense"], summary["essential"], summary["run_id"], config)


def curve_so_far(ctx: Context, config: SweepConfig, search: SweepResult) -> tuple[pd.DataFrame, int]:
    """While ``config``'s curve is computed in the background: the points it has (those its run stored so far,
    and those ``search``, the turning-point search, decided; a full evaluation wins over a bound) and how
    many grid points the curve has in all. A chart draws them as points with "n of N points"."""
    run = ctx.store.get_run(run_id_for(ctx, "sweep", config))
    stored = [] if run is None else [p if "early" in p else complete_point(p) for p in
                                     ctx.store.points(run["id"]).values() if "method" in p and not p.get("open")]
    frame = pd.concat([pd.DataFrame(stored, columns=FRAME_COLUMNS), search.frame], ignore_index=True)
    frame = frame.assign(_bound=frame["accuracy"].isna()).sort_values(["method", "sparsity", "_bound"])
    frame = frame.drop_duplicates(["method", "sparsity"]).drop(columns="_bound").reset_index(drop=True)
    return frame, sum(len(_grid(c, config)) for c in curves(config))


def turning_point_search(config: SweepConfig) -> SweepConfig | None:
    """The fast way to ``config``'s turning point: the same sweep as a ``scout`` search over the
    same range, or None when ``config`` does not refine, already is a search, or fine-tunes every
    point (``finetune_steps`` or the essential protocol: that runs as one background job). The dashboard shows this search's answer at once
    and computes ``config``'s curve in the background: the answer does not wait for the curve."""
    if not config.refine or config.search != "grid" or config.finetune_steps or config.protocol == "essential":
        return None
    return dataclasses.replace(config, search="scout", refine=False, stop_at_drop=False)


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


def prune_decide_headline(s: dict) -> Headline:
    """Headline of one early decision of a sweep point (no accuracy: only whether it is within tolerance)."""
    verdict = "still open (a scout)" if s.get("open") else \
        "within tolerance" if s["correct"] >= s["required"] else "below tolerance"
    return Headline(None, s["sparsity_reached"], f"{s['method']} at {pct(s['sparsity_reached'])}: {verdict} "
                    f"after {s['seen']} of {s['n']} images")


def prune_prefix_headline(s: dict) -> Headline:
    """Headline of a point's furthest early decision (its counts, reused by every tolerance)."""
    return Headline(None, s["sparsity_reached"], f"{s['method']} at {pct(s['sparsity_reached'])}: {s['correct']} "
                    f"of the first {s['seen']} of {s['n']} images right")


def sweep_headline(s: dict) -> Headline:
    """Headline of a stored sweep: dense accuracy and each method's essential sparsity."""
    ess = {m: e["essential_sparsity"] for m, e in s["essential"].items()}
    first = next(iter(ess.values()), None)
    return Headline(s["dense"]["accuracy"], first, f"dense {pct(s['dense']['accuracy'])}; essential sparsity "
                    + ", ".join(f"{m} {pct(v)}" for m, v in ess.items()))


def sweep_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against sparsity, one series per method, each starting at the dense model; points decided
    early (no accuracy, ``search="bisect"``/``"scout"``) are left out."""
    rows = [{"series": p["method"], "axis": "sparsity", "x": p["sparsity"], "accuracy": p["accuracy"]}
            for p in points.values() if "method" in p and p.get("accuracy") is not None]  # None: decided early
    if summary and rows:  # every method starts at the dense model
        rows += [{"series": m, "axis": "sparsity", "x": 0.0, "accuracy": summary["dense"]["accuracy"]}
                 for m in dict.fromkeys(r["series"] for r in rows)]
    return rows


register_experiment(ExperimentSpec("prune-eval", headline=prune_eval_headline))  # PointEvaluator.evaluate stores it
register_experiment(ExperimentSpec("prune-decide", headline=prune_decide_headline))  # PointEvaluator.decide stores it
register_experiment(ExperimentSpec("prune-prefix", headline=prune_prefix_headline))  # PointEvaluator.keep_prefix
register_experiment(ExperimentSpec("sweep", SweepConfig, sweep, sweep_headline, sweep_curve, job=True))
