"""What the Masks and Soup pages compare, decided in one place: which ticket runs there are and which are drawn
by default, OMP against a ticket (or, without one, against other one-shot masks), two chosen masks, and every
ticket's accuracy beside dense with the cost of each run split into tables that fit a phone's width.

The tables and masks come from :mod:`lotus_core.views.catalog`; this module only chooses among them.
Accuracies and sparsities are fractions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from ..context import Context
from ..core.mask import MAX_MASK_BYTES, Mask
from ..pruning.similarity import mask_similarity
from ..results.store import RunStatus
from .catalog import (COMPARED_KINDS, accuracy_comparison, cost_table, omp_vs_one_shot, omp_vs_tickets, run_costs,
                      run_label, ticket_runs)

NEWEST = {"lth": 1, "issp": 3, "rigl": 1, "supermask": 1}  # runs of each kind drawn by default (ISSP: a sweep)


def ticket_choices(ctx: Context) -> dict[str, str]:
    """Label -> run id of every stored LTH/ISSP run of this model, lottery tickets first, then ISSP."""
    labels = {run_label(r): r["id"] for _, r in ticket_runs(ctx).iterrows()}
    return {label: labels[label] for label in sorted(labels, key=lambda label: not label.startswith("LTH"))}


@dataclass(frozen=True)
class TicketSimilarity:
    """OMP against a stored ticket round by round (``one_shot`` False), or against other one-shot masks."""
    table: pd.DataFrame  # omp_vs_tickets or omp_vs_one_shot
    one_shot: bool

    @property
    def overall(self) -> pd.DataFrame:
        """The ticket comparison over all layers (layer "all"), one row per finished round."""
        return self.table[self.table["layer"] == "all"]


def ticket_similarity(ctx: Context, run_id: str | None) -> TicketSimilarity:
    """OMP against the ticket run ``run_id`` at each round's sparsity; with no run, OMP against the other one-shot
    criteria (both stored after the first time)."""
    if run_id is None:
        return TicketSimilarity(omp_vs_one_shot(ctx), True)
    return TicketSimilarity(omp_vs_tickets(ctx, run_id), False)


@dataclass(frozen=True)
class MaskPair:
    """Two masks the user picked (B possibly uploaded) and their similarity (mask_similarity's keys)."""
    a: Mask
    b: Mask
    label_b: str
    similarity: dict


def mask_pair(choices: dict[str, Callable[[], Mask]], label_a: str, label_b: str,
              upload: tuple[str, bytes] | None = None) -> MaskPair:
    """Masks ``label_a`` and ``label_b`` of ``choices`` (or B uploaded: (file name, bytes), at most
    MAX_MASK_BYTES; a mask of other parameters is refused in one line) and their similarity."""
    mask_a = choices[label_a]()
    if upload is not None:
        label_b, mask_b = upload[0], Mask.from_bytes(upload[1], MAX_MASK_BYTES)
    else:
        mask_b = choices[label_b]()
    return MaskPair(mask_a, mask_b, label_b, mask_similarity(mask_a, mask_b))


def default_tickets(runs: pd.DataFrame) -> list[str]:
    """The runs drawn until the user chooses: the newest finished of each kind (:data:`NEWEST`)."""
    finished = runs[runs["status"] == RunStatus.DONE]
    return [rid for kind, n in NEWEST.items() for rid in list(finished["id"][finished["kind"] == kind])[:n]]


COST_PARTS = {  # the cost table in two narrow tables (a phone's width): what each run cost, what it reached
    "cost": ["run", "kind", "rounds", "training steps", "training time (s)"],
    "reached": ["run", "data fraction", "final sparsity", "final accuracy"],
}
COST_LABELS = {"training steps": "steps", "training time (s)": "time (s)", "final sparsity": "sparsity",
               "final accuracy": "accuracy", "data fraction": "data"}  # short headers on screen
COST_HIDDEN = ("kind",)  # said by the run's label already


@dataclass(frozen=True)
class SoupComparison:
    """Every chosen ticket's accuracy beside one-shot OMP and random, the dense reference, and the runs' costs."""
    table: pd.DataFrame  # accuracy_comparison: series, sparsity, accuracy, ci_low, ci_high
    dense: dict  # Context.dense_accuracy on the same test subset (accuracy, ci95, n)
    done: list[str]  # the chosen runs that finished
    lth: list[str]  # ... of them, the LTH runs (the comparisons at an LTH budget start from them)
    trained: list[str]  # ... the LTH and ISSP runs (their training trace can be drawn)
    costs: dict[str, pd.DataFrame]  # COST_PARTS name -> its table (text cells, no "None")


def _finished(chosen: Sequence[str], runs: pd.DataFrame, kinds: Sequence[str] = COMPARED_KINDS) -> list[str]:
    """The run ids of ``chosen`` that finished and are of ``kinds`` (``runs``: ticket_runs of COMPARED_KINDS)."""
    status = runs.set_index("id")[["kind", "status"]]
    return [rid for rid in chosen if status.loc[rid, "status"] == RunStatus.DONE and status.loc[rid, "kind"] in kinds]


def finished_lth(chosen: Sequence[str], runs: pd.DataFrame) -> list[str]:
    """The finished LTH runs among ``chosen``: the comparisons at an LTH run's budget start from them."""
    return _finished(chosen, runs, ("lth",))


def soup_comparison(ctx: Context, chosen: Sequence[str], runs: pd.DataFrame, limit: int) -> SoupComparison:
    """The Soup page's comparison of the ``chosen`` run ids (``runs``: ticket_runs of COMPARED_KINDS) on ``limit``
    test images: the one-shot points are stored after the first time."""
    done = _finished(chosen, runs)
    table = accuracy_comparison(ctx, list(chosen), limit=limit)
    dense = ctx.dense_accuracy(limit=limit)
    costs = cost_table(run_costs(ctx, done))
    if "run" in costs:
        costs = costs.assign(run=costs["run"].map(short_run))
    parts = {name: costs[[c for c in columns if c in costs]] for name, columns in COST_PARTS.items()}
    return SoupComparison(table, dense, done, finished_lth(done, runs), _finished(done, runs, ("lth", "issp")), parts)


def short_run(label: str) -> str:
    """A run's label in a narrow table: its kind and id, e.g. "LTH 1a2b3c" (the picker above gives the rest)."""
    return f"{label.split(' ')[0]} {label.rsplit(' ', 1)[-1]}"

