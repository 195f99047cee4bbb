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

from ..context import Context
from ..core.errors import LotusError
from ..training.finetune import finetune
from ..pruning.controls import CONTROLS, check_control, reinit_, shuffled  # noqa: F401 (CONTROLS: the CLI reads it here)
from ..core.mask import Mask, apply_mask_
from ..pruning.scope import scoped_parameters
from ..results.executors import get_executor, run_together, track
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run, run_id_for
from .common import load_state_bytes, mask_blob, ordered
from .lth import REWIND_BLOB, LTHConfig, rewind_steps


@dataclass(frozen=True)
class ControlConfig:
    """A control of one round of a stored LTH run."""

    lth: LTHConfig  # the LTH run whose ticket is controlled
    round: int  # which round's mask (1 = the first pruned round)
    control: str = "shuffle"  # reinit | shuffle
    seed: int = 0  # the shuffle's or the re-initialisation's random draw


def _lth_inputs(ctx: Context, cfg: ControlConfig) -> tuple[bytes, bytes | None]:
    """The stored LTH round's mask bytes and the run's rewinding-point weights (None for ``pretrained``)."""
    lth_run = Run(ctx.store, run_id_for(ctx, "lth", cfg.lth), "lth")
    data = lth_run.blob(mask_blob(cfg.round))
    if data is None or not lth_run.has(f"round-{cfg.round}"):
        raise LotusError(f"round {cfg.round} of this LTH run is not stored; run the LTH experiment that far first")
    rewind = lth_run.blob(REWIND_BLOB) if rewind_steps(cfg.lth) else None
    if rewind_steps(cfg.lth) and rewind is None:
        raise LotusError(f"this LTH run has no weights at step {rewind_steps(cfg.lth)} yet; run its round 0 first")
    return data, rewind


def control_start(ctx: Context, cfg: ControlConfig, mask: bytes, rewind: bytes | None) -> tuple[torch.nn.Module, Mask]:
    """The control's starting model (mask applied) and its mask, from the ticket's mask bytes and the
    rewinding point's weights (None: the pre-trained model). Pure: inputs in, model out."""
    check_control(cfg.control)
    model = ctx.copy_model() if rewind is None else load_state_bytes(ctx.copy_model(), rewind)
    control_mask = ordered(Mask.from_bytes(mask), model)
    if cfg.control == "shuffle":
        control_mask = shuffled(control_mask, seed=cfg.seed)
    else:
        reinit_(scoped_parameters(model, cfg.lth.scope), seed=cfg.seed)
    apply_mask_(model, control_mask)
    return model, control_mask


def control_model(ctx: Context, cfg: ControlConfig) -> tuple[torch.nn.Module, Mask]:
    """The control's starting model (mask applied) and its mask, before fine-tuning, from the stored LTH run."""
    check_control(cfg.control)
    return control_start(ctx, cfg, *_lth_inputs(ctx, cfg))


def control_result(ctx: Context, cfg: ControlConfig, mask: bytes, rewind: bytes | None, on_progress=None,
                   should_stop=None) -> dict:
    """A control, inputs in and a plain result out (an executor unit on Ray): built by :func:`control_start`,
    fine-tuned with the round's budget, evaluated. Returns ``mask`` (the control's mask bytes) and ``point``
    (sparsity, accuracy with its Wilson 95% interval, n)."""
    lth = cfg.lth
    model, control_mask = control_start(ctx, cfg, mask, rewind)
    finetune(model, control_mask, ctx.train, ctx.data_config, lth.steps, lth.lr, lth.batch_size, lth.seed,
             on_progress=on_progress, should_stop=should_stop)
    if should_stop is not None and should_stop():
        return {}  # the driver's run.check() raises: nothing of a stopped control is stored
    res = ctx.evaluate(model, limit=lth.limit, seed=lth.seed)
    return {"mask": control_mask.to_bytes(), "point": {"sparsity": control_mask.sparsity, "accuracy": res.accuracy,
                                                       "ci_low": res.ci95[0], "ci_high": res.ci95[1]}}


def control_state(ctx: Context, cfg: ControlConfig) -> tuple[Context, ControlConfig]:
    """Executor set-up of a control: the context (with its training split) and the config."""
    return ctx, cfg


def control_unit(state: tuple[Context, ControlConfig], unit: tuple[bytes, bytes | None]) -> dict:
    """Executor unit of a control: :func:`control_result` from the ticket's mask and rewinding point's bytes."""
    ctx, cfg = state
    return control_result(ctx, cfg, *unit)


def run_control(ctx: Context, cfg: ControlConfig, run: Run) -> dict:
    """Experiment: build the control, fine-tune it with the round's budget, evaluate.

    The work runs where ``ctx.executor`` says (here with step progress, or as one Ray task); this
    process stores the control's mask (``mask.safetensors``) and returns control, round, sparsity,
    accuracy with its Wilson 95% interval, and the ticket's accuracy at that round.
    """
    check_control(cfg.control)
    inputs = _lth_inputs(ctx, cfg)
    if ctx.executor.kind == "local":
        out = control_result(ctx, cfg, *inputs, should_stop=run.stopped,
                             on_progress=lambda p: run.progress(step=p.step, steps=p.steps, loss=p.loss))
        run.check()
    else:
        with get_executor(ctx.executor).pool(control_state, ctx, cfg, train=True) as pool:
            out = [o.result for o in track(run, pool.map(control_unit, {"control": inputs}), pool.slots, 0, 1)][0]
    run.blob("mask.safetensors", out["mask"])
    ticket = ctx.store.get_point(run_id_for(ctx, "lth", cfg.lth), f"round-{cfg.round}")
    return {"control": cfg.control, "round": cfg.round, **out["point"], "ticket_accuracy": ticket["accuracy"],
            "steps": cfg.lth.steps}


def run_controls(ctx: Context, configs: list[ControlConfig], on_progress=None) -> list[dict]:
    """Several controls (e.g. both kinds, or several draws) submitted together
    (:func:`~lotus_core.results.executors.run_together`): on Ray they share the cluster at once, locally
    they run one after another; each is stored as its own run. Their summaries, in order."""
    import functools

    from ..results.runs import run_experiment

    return run_together(ctx, [(run_id_for(ctx, "lth-control", c), functools.partial(
        run_experiment, ctx, "lth-control", c, on_progress=on_progress)) for c in configs])


def control_headline(s: dict) -> Headline:
    """Headline of a stored control beside its ticket's accuracy."""
    return Headline(s["accuracy"], s["sparsity"], f"{s['control']} control of round {s['round']}: "
                    f"{pct(s['accuracy'])} (ticket {pct(s['ticket_accuracy'])})")


register_experiment(ExperimentSpec("lth-control", ControlConfig, run_control, control_headline, job=True))
