"""Controls for a lottery ticket: does its topology, or do its surviving weights, matter?

The two controls of :mod:`lotus_core.pruning.controls` (shared with every one-shot method's
sweep) applied to a stored LTH round:

- ``reinit``: the ticket's mask on *re-initialised* scoped weights; embeddings, norms, biases
  and the head stay at the rewinding point.
- ``shuffle``: the ticket's kept positions shuffled within each tensor, on the
  rewinding-point weights.

Each control is fine-tuned with exactly the ticket's round budget (steps, learning rate, batch
size and batch order) and evaluated on the same test subset, so its accuracy pairs with the
ticket's recorded accuracy at that round.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.context import Context
from ..core.errors import LotusError
from ..training.finetune import finetune
from ..pruning.controls import CONTROLS, check_control, reinit_, shuffled  # noqa: F401 (CONTROLS: the CLI reads it here)
from ..pruning.mask import Mask, apply_mask_
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run, run_id_for
from .common import mask_blob, ordered
from .lth import LTHConfig, rewind_model


@dataclass(frozen=True)
class ControlConfig:
    """A control of one round of a stored LTH run."""

    lth: LTHConfig  # the LTH run whose ticket is controlled
    round: int  # which round's mask (1 = the first pruned round)
    control: str = "shuffle"  # reinit | shuffle
    seed: int = 0  # the shuffle's or the re-initialisation's random draw


def control_model(ctx: Context, cfg: ControlConfig) -> tuple[torch.nn.Module, Mask]:
    """The control's starting model (mask applied) and its mask, before fine-tuning."""
    check_control(cfg.control)
    lth = cfg.lth
    lth_run = Run(ctx.store, run_id_for(ctx, "lth", lth), "lth")
    data = lth_run.blob(mask_blob(cfg.round))
    if data is None or not lth_run.has(f"round-{cfg.round}"):
        raise LotusError(f"round {cfg.round} of this LTH run is not stored; run the LTH experiment that far first")
    model = rewind_model(ctx, lth, lth_run)
    mask = ordered(Mask.from_bytes(data), model)
    if cfg.control == "shuffle":
        mask = shuffled(mask, seed=cfg.seed)
    else:
        reinit_(scoped_parameters(model, lth.scope), seed=cfg.seed)
    apply_mask_(model, mask)
    return model, mask


def run_control(ctx: Context, cfg: ControlConfig, run: Run) -> dict:
    """Experiment: build the control, fine-tune it with the round's budget, evaluate.

    Stores the control's mask (``mask.safetensors``); returns control, round, sparsity,
    accuracy with its Wilson 95% interval, and the ticket's accuracy at that round.
    """
    lth = cfg.lth
    model, mask = control_model(ctx, cfg)
    run.blob("mask.safetensors", mask.to_bytes())
    finetune(model, mask, ctx.train, ctx.data_config, lth.steps, lth.lr, lth.batch_size, lth.seed,
             on_progress=lambda p: run.progress(step=p.step, steps=p.steps, loss=p.loss), should_stop=run.stopped)
    run.check()
    res = ctx.evaluate(model, limit=lth.limit, seed=lth.seed)
    ticket = ctx.store.get_point(run_id_for(ctx, "lth", lth), f"round-{cfg.round}")
    return {"control": cfg.control, "round": cfg.round, "sparsity": mask.sparsity, "accuracy": res.accuracy,
            "ci_low": res.ci95[0], "ci_high": res.ci95[1], "ticket_accuracy": ticket["accuracy"], "steps": lth.steps}


def control_headline(s: dict) -> Headline:
    """Headline of a stored control beside its ticket's accuracy."""
    return Headline(s["accuracy"], s["sparsity"], f"{s['control']} control of round {s['round']}: "
                    f"{pct(s['accuracy'])} (ticket {pct(s['ticket_accuracy'])})")


register_experiment(ExperimentSpec("lth-control", ControlConfig, run_control, control_headline, job=True))
