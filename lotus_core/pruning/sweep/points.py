"""Point evaluation: one pruned model at one sparsity, evaluated in full or decided early.

:class:`PointEvaluator` keeps one reusable working copy of the model; every point it computes is
stored under its own configuration (:func:`~lotus_core.pruning.sweep.config.point_config`), so a
point computed by one sweep, by ``prune`` or by the dashboard is never computed again.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ...context import Context
from ...core.device import decision_batch_size
from ...data.images import subset_indices, to_model_input
from ...results.runs import run_experiment, stored_summary
from ...training.evaluate import MIN_BATCH, Decision, decide, decision, predict, wilson_interval
from ...training.finetune import fine_tuned_model, finetune
from .. import Mask, get_pruner, masker
from ..controls import reinit_, shuffled
from ..ranking import MaskFn
from ..scope import scoped_parameters
from .config import KEY_OPTION_FIELDS, SweepConfig, point_config, split_curve

COUNT_FIELDS = ("method", "sparsity", "sparsity_reached", "n", "correct", "seen")  # what a decision prefix keeps


def point_key(curve: str, sparsity: float) -> str:
    """The run point key of ``curve`` at ``sparsity`` (``"omp@0.5000"``)."""
    return f"{curve}@{sparsity:.4f}"


def unrun(summary: dict) -> dict:
    """A stored summary without its ``run_id``: the point data."""
    return {k: v for k, v in summary.items() if k != "run_id"}


def complete_point(point: dict) -> dict:
    """A fully evaluated point with the fields every sweep point has: early and open (False), seen (= n)
    and acc_low = acc_high = accuracy (the bounds of a point decided early)."""
    correct = point.get("correct", round(point["accuracy"] * point["n"]))
    return {**point, "correct": correct, "seen": point["n"], "early": False, "open": False,
            "acc_low": point["accuracy"], "acc_high": point["accuracy"]}


def full_point(curve: str, sparsity: float, sparsity_reached: float, correct: int, n: int) -> dict:
    """The stored fields of a fully evaluated point: accuracy ``correct / n`` and its Wilson 95% interval."""
    ci = wilson_interval(correct, n)
    return {"method": curve, "sparsity": sparsity, "sparsity_reached": sparsity_reached,
            "accuracy": correct / n, "ci_low": ci[0], "ci_high": ci[1], "n": n, "correct": correct}


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
        self._calib: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # calibration size -> (images, labels)
        self._maskers: dict[str, MaskFn] = {}  # method -> sparsity -> Mask (scores ranked once per sweep)
        self._reinit: dict[str, torch.Tensor] | None = None  # the reinit control's scoped weights

    def calib_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` seeded training images as model input, and their labels (a method's calibration batch)."""
        if size not in self._calib:
            idx = subset_indices(len(self.ctx.train), size, self.config.seed)
            self._calib[size] = (to_model_input(self.ctx.train.images[idx], self.ctx.data_config),
                                 self.ctx.train.labels[idx])
        return self._calib[size]

    def mask(self, method: str, sparsity: float) -> Mask:
        """The mask of ``method`` at ``sparsity``; the method ranks the base weights once per evaluator, with
        its own options from the config handed over as they are."""
        if method not in self._maskers:
            own = self.config.options_for(method)
            size = getattr(own, "calib_size", KEY_OPTION_FIELDS["calib_size"])  # the method's, else the default
            calib, labels = self.calib_batch(size) if get_pruner(method).needs_calibration else (None, None)
            self._maskers[method] = masker(self.ctx.model, method, self.config.scope, calib=calib, labels=labels,
                                           seed=self.config.seed, own=own)
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

    def effective_sparsity(self, method: str, requested: float) -> float:
        """The sparsity ``method`` reaches when ``requested`` is asked (N:M: its fixed 1 - N/M)."""
        return get_pruner(method).effective_sparsity(requested, self.config.options_for(method))

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
        return full_point(curve, sparsity, mask.sparsity, correct, n)

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
            data = {k: point[k] for k in COUNT_FIELDS}
            run_experiment(self.ctx, "prune-prefix", self.prefix_key(point["method"], point["sparsity"], ordered),
                           lambda ctx, _, run: data, refresh=True)

    def evaluate(self, method: str, sparsity: float, refresh: bool = False) -> dict:
        """Accuracy of ``method`` at ``sparsity``, from the store when already computed (unless ``refresh``)."""
        summary = run_experiment(self.ctx, "prune-eval", self.point_config(method, sparsity),
                                 lambda ctx, _, run: self.compute(method, sparsity), refresh=refresh)
        return unrun(summary)

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
            return complete_point(unrun(stored))
        begun = None if start is None else Decision(None, start["correct"], start["seen"], start["n"], required)
        ask = _Ask(full, required, order, budget)
        # measured once: any earlier decision of this point in this order, whatever its threshold, is gone on from
        prefix = None if refresh or stored_summary(self.ctx, "prune-decide", ask.key(self, begun)) is not None \
            else self.prefix(curve, sparsity, order is not None)
        if prefix is not None and prefix["seen"] > (begun.seen if begun else 0):
            begun = Decision(None, prefix["correct"], prefix["seen"], prefix["n"], required)
            settled = ask.settled(prefix, begun)
            if settled is not None:
                return self._decided(settled, full, refresh)
        out = run_experiment(self.ctx, "prune-decide", ask.key(self, begun),
                             lambda ctx, _, run: self._decide_now(curve, sparsity, ask, begun), refresh=refresh)
        out = {"open": False, **unrun(out)}
        self.keep_prefix(out, order is not None)
        return self._decided(out, full, refresh)

    def _decide_now(self, curve: str, sparsity: float, ask: "_Ask", begun: Decision | None) -> dict:
        """The decision of ``ask`` for the point, computed from the images after ``begun``."""
        c = self.config
        mask = self.curve_mask(curve, sparsity)
        d = decide(self.pruned_model(mask), self.ctx.test, self.ctx.data_config, ask.required, limit=c.limit,
                   seed=c.seed, bf16=c.bf16, order=ask.order, budget=ask.budget, start=begun)
        return {"method": curve, "sparsity": sparsity, "sparsity_reached": mask.sparsity, "n": d.n,
                "correct": d.correct, "seen": d.seen, "required": ask.required, "early": d.early,
                "open": d.above is None, "acc_low": d.bounds[0], "acc_high": d.bounds[1]}

    def _decided(self, out: dict, full: dict, refresh: bool) -> dict:
        """The sweep point of a decision's counts ``out``; one that saw every image is also stored as the
        point's full evaluation (``prune-eval``)."""
        if out["early"] or out["open"]:
            return {**out, "accuracy": None, "ci_low": None, "ci_high": None}
        point = full_point(out["method"], out["sparsity"], out["sparsity_reached"], out["correct"], out["n"])
        run_experiment(self.ctx, "prune-eval", full, lambda ctx, _, run: point, refresh=refresh)
        return complete_point(point)


class _Ask:
    """One early-decision question about a point: its key (``full``), the correct images ``required``, the
    image ``order`` (None: subset order) and the ``budget`` of images (None: as many as it takes)."""

    def __init__(self, full: dict, required: int, order: Sequence[int] | None, budget: int | None):
        self.full, self.required, self.order, self.budget = full, required, order, budget

    def key(self, evaluator: PointEvaluator, begun: Decision | None) -> dict:
        """The decision's key: the order, the batches, the budget and where it began decide which images a
        decision saw (its stored counts), not its answer."""
        batches = [MIN_BATCH, decision_batch_size(evaluator.ctx.device, evaluator.ctx.data_config["input_size"])]
        return {**self.full, "required": self.required, **({"order": "hard-first"} if self.order is not None else {}),
                "batches": batches, **({"budget": self.budget} if self.budget is not None else {}),
                **({"after": begun.seen} if begun else {})}

    def settled(self, prefix: dict, begun: Decision) -> dict | None:
        """The decision a stored prefix (``begun``'s counts) already gives: certain, or open at the budget; None
        when more images are needed."""
        above = decision(begun.correct, begun.seen, begun.n, self.required)
        if above is None and not (self.budget is not None and begun.seen >= min(self.budget, begun.n)):
            return None
        low, high = Decision(above, begun.correct, begun.seen, begun.n, self.required).bounds
        return {**{k: prefix[k] for k in COUNT_FIELDS}, "required": self.required, "early": begun.seen < begun.n,
                "open": above is None, "acc_low": low, "acc_high": high}


def point_state(ctx: Context, config: SweepConfig) -> PointEvaluator:
    """Executor set-up of a sweep: one evaluator (working copy, rankings) per process."""
    return PointEvaluator(ctx, config)


def point_unit(evaluator: PointEvaluator, unit: tuple[str, float, tuple | None]) -> dict:
    """Executor unit of a sweep: one (method, sparsity, begun) point, computed (going on from ``begun``, an
    early decision's counts, when given)."""
    return evaluator.compute(*unit)
