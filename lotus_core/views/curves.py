"""What the Sparsity curves page draws, and whether it computes, serves or queues it.

The page gives its choices (a :class:`~lotus_core.pruning.sweep.SweepConfig`, whether "Compute curve" was
clicked, the curve drawn last); :func:`curve_view` decides, in one place:

- a curve already stored is served from its stored summary (each config is looked up once per rerun);
- a curve that fine-tunes every point (``finetune_steps`` or the Essential Sparsity protocol) is queued on
  the background worker on "Compute curve", and the last curve stays drawn until it is stored;
- a refined one-shot curve is answered at once by its scouted turning-point search
  (:func:`~lotus_core.pruning.sweep.turning_point_search`) while the full curve is computed in the
  background; meanwhile only the points evaluated so far are drawn (``planned`` says how many in all);
- any other curve is computed here, on the page's request.

Queueing is the page's (it knows the session's model and weights): it passes ``launch(kind, config) -> run id``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from ..context import Context
from ..pruning.sensitivity import SensitivityConfig, run_sensitivity
from ..pruning.sweep import (SweepConfig, SweepResult, curve_so_far, layer_sparsity_table, run_sweep, sweep_result,
                             turning_point_search)
from ..results.keys import here_id
from ..results.runs import stored_summary
from ..results.store import ACTIVE, RunStatus
from .catalog import one_shot_mask

Launch = Callable[[str, Any], str]  # queue (kind, config) on the background worker; returns the run id


@dataclass(frozen=True)
class CurveView:
    """What the page shows on this rerun (accuracies and sparsities are fractions)."""
    chosen: SweepConfig  # the user's settings
    config: SweepConfig | None  # the curve drawn: None while nothing is drawn and the chosen one needs the worker
    background: bool  # the chosen curve fine-tunes every point and is not stored: the worker computes it
    queued: str | None = None  # the run id queued for the chosen curve on this rerun ("Compute curve")
    result: SweepResult | None = None  # the drawn curve (while it is computed: the search's answer)
    answer: SweepResult | None = None  # where the turning points come from (the curve's own once stored)
    frame: pd.DataFrame | None = None  # the points drawn (FRAME_COLUMNS)
    planned: int | None = None  # while the curve is computed in the background: its grid points in all

    @property
    def partial(self) -> bool:
        """Whether only the points evaluated so far are drawn (the full curve is still computing)."""
        return self.planned is not None

    @property
    def changed(self) -> bool:
        """Whether the settings differ from the curve drawn (it stays until "Compute curve")."""
        return self.config is not None and self.config != self.chosen


def fine_tunes_every_point(config: SweepConfig) -> bool:
    """Whether each point of ``config`` is fine-tuned (minutes a point): such a curve runs on the worker."""
    return config.finetune_steps > 0 or config.protocol == "essential"


def curve_view(ctx: Context, chosen: SweepConfig, drawn: SweepConfig | None, compute: bool, launch: Launch,
               on_progress: Callable[[dict], None] | None = None) -> CurveView:
    """The curve to draw for the page's choice ``chosen`` (``drawn``: the curve drawn on the last rerun, None on a
    first load; ``compute``: "Compute curve" was clicked), computing, serving or queueing it as the module
    docstring says. ``on_progress`` gets the progress of points computed here."""
    lookups: dict[SweepConfig, dict | None] = {}  # each config is looked up in the store once per rerun

    def stored(config: SweepConfig | None) -> dict | None:
        if config is None:
            return None
        if config not in lookups:
            lookups[config] = stored_summary(ctx, "sweep", config)
        return lookups[config]

    is_stored = stored(chosen) is not None or stored(turning_point_search(chosen)) is not None
    background = fine_tunes_every_point(chosen) and not is_stored
    queued = launch("sweep", chosen) if background and compute else None
    # the chosen curve is drawn when asked, on a first load, or when stored (instant); otherwise the last one stays
    config = chosen if not background and (compute or drawn is None or is_stored) else drawn
    if config is None:
        return CurveView(chosen, None, background, queued)
    if (summary := stored(config)) is not None:
        result = sweep_result(ctx, summary, config)
        return CurveView(chosen, config, background, queued, result, result, result.frame)
    if (search := turning_point_search(config)) is None:
        result = run_sweep(ctx, config, on_progress=on_progress)
        return CurveView(chosen, config, background, queued, result, result, result.frame)
    answer = run_sweep(ctx, search, on_progress=on_progress)  # the turning point now, by the scouted search
    run = ctx.store.get_run(here_id(ctx, "sweep", config))
    if run is None or run["status"] not in ACTIVE:  # the whole curve goes to the worker
        run = ctx.store.get_run(launch("sweep", config))
    if run is not None and run["status"] == RunStatus.DONE:  # done at once (tests run jobs inline)
        result = sweep_result(ctx, {**run["summary"], "run_id": run["id"]}, config)
        return CurveView(chosen, config, background, queued, result, result, result.frame)
    frame, planned = curve_so_far(ctx, config, answer)
    return CurveView(chosen, config, background, queued, answer, answer, frame, planned)


def turning_point_texts(essential: dict) -> tuple[str, str, str | None]:
    """One method's turning point (an entry of ``SweepResult.essential``) in words: the value (percent), its
    help (bracket, evaluations) and a note when the curve is not monotone (None when it is)."""
    hi = "never below" if essential["bracket"][1] is None else f"{100 * essential['bracket'][1]:.1f}%"
    early = f", {essential['decided_early']} decided early" if essential.get("decided_early") else ""
    note = None
    if not essential["monotone"]:
        note = ("Not monotone: accuracy rises again somewhere"
                + (", even back within tolerance after the first drop" if essential["recovers"] else "")
                + ". The turning point is the first drop, by the paper's rule.")
    return (f"{100 * essential['essential_sparsity']:.1f}%",
            f"bracket [{100 * essential['bracket'][0]:.1f}%, {hi}], {essential['evaluations']} evaluations{early}", note)


def layer_sparsity(ctx: Context, sparsity: float, protocol: str = "lotus") -> pd.DataFrame:
    """Per-layer sparsity of the global OMP mask at ``sparsity`` (fraction), the mask computed once per process
    (:func:`~lotus_core.views.catalog.one_shot_mask`: no copy of the model on a rerun)."""
    return layer_sparsity_table(one_shot_mask(ctx, "omp", sparsity, protocol=protocol))


def sensitivity_view(ctx: Context, limit: int) -> tuple[SensitivityConfig, pd.DataFrame | None]:
    """The page's sensitivity analysis (one layer pruned alone) on ``limit`` test images and its table of accuracy
    drops (layers x sparsities, fractions) when stored, else None (the page offers to queue it)."""
    config = SensitivityConfig(limit=limit)
    return config, (run_sensitivity(ctx, config) if stored_summary(ctx, "sensitivity", config) is not None else None)
