"""Sparsity-accuracy curves and the essential-sparsity turning point.

"The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal et al., NeurIPS
2023): the essential sparsity is the highest evaluated sparsity before the first one whose
accuracy falls below A - eps (the rule is :func:`lotus_core.pruning.essential.essential_sparsity`,
the tolerance :class:`lotus_core.core.tolerance.Tolerance`).

Three searches (``SweepConfig.search``):

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

Every point is an evaluation stored under its own configuration (method and its options,
sparsity, scope, test subset, fine-tuning; a decision also under its threshold), so a point
computed by one sweep, by ``prune`` or by the dashboard is never computed again, and an
interrupted sweep resumes where it stopped.

``controls`` adds the sanity checks of :mod:`lotus_core.pruning.controls` beside every method:
the curve ``"snip+shuffle"`` is SNIP's mask at each sparsity with its kept positions shuffled
within each layer, ``"snip+reinit"`` the same mask on re-initialised scoped weights (fine-tuned
with the sweep's ``finetune_steps``, like every point).

The package: :mod:`.config` (SweepConfig with each method's options, checks, keys),
:mod:`.points` (one point, evaluated or decided early), :mod:`.grid` (the grid through the
executor, refinement), :mod:`.search` (the experiment and the bisection), :mod:`.results`
(tables), :mod:`.headlines`.
"""
from __future__ import annotations

from ...results.registry import ExperimentSpec, register_experiment
from ..essential import Essential, essential_sparsity
from .config import (DEFAULT_GRID, KEY_OPTION_FIELDS, MAX_GRID, PROTOCOLS, SEARCHES, SweepConfig, check_sweep,
                     curve_name, curves, grid, parse_sparsities, point_config, split_curve)
from .headlines import (prune_decide_headline, prune_eval_headline, prune_prefix_headline, sweep_curve,
                        sweep_headline)
from .points import PointEvaluator, complete_point, point_key, point_state, point_unit
from .results import (FRAME_COLUMNS, SweepResult, curve_so_far, layer_sparsity_table, run_sweep, sweep_result,
                      turning_point_search)
from .search import dense_reference, sweep

__all__ = ["DEFAULT_GRID", "Essential", "FRAME_COLUMNS", "KEY_OPTION_FIELDS", "MAX_GRID", "PROTOCOLS",
           "PointEvaluator", "SEARCHES", "SweepConfig", "SweepResult", "check_sweep", "complete_point", "curve_name",
           "curve_so_far", "curves", "dense_reference", "essential_sparsity", "grid", "layer_sparsity_table",
           "parse_sparsities", "point_config", "point_key", "point_state", "point_unit", "run_sweep", "split_curve",
           "sweep", "sweep_curve", "sweep_headline", "sweep_result", "turning_point_search"]

register_experiment(ExperimentSpec("prune-eval", headline=prune_eval_headline))  # PointEvaluator.evaluate stores it
register_experiment(ExperimentSpec("prune-decide", headline=prune_decide_headline))  # PointEvaluator.decide stores it
register_experiment(ExperimentSpec("prune-prefix", headline=prune_prefix_headline))  # PointEvaluator.keep_prefix
register_experiment(ExperimentSpec("sweep", SweepConfig, sweep, sweep_headline, sweep_curve, job=True))
