"""Paper claims vs measured here: each claim of the papers LOTUS builds on, beside the number LOTUS stored for it.

Every claim (:data:`CLAIMS`) gets a verdict from one explicit rule below, applied to numbers read from stored
runs (the Report's pinned runs; nothing is computed here): ``reproduced``, ``not reproduced`` or ``not comparable``
(the stored runs cannot test it: another dataset, a run too small, a quantity no run measures), always with why.
The rules are pure functions over plain summaries so tests pin them at their thresholds. Their tolerances:

- "about X%" (:func:`about`): the measured accuracy is within :data:`ABOUT` (5 points) of X; the papers round, and
  LOTUS's models and data differ from theirs, so a tighter margin would test the setup, not the claim;
- "near-best by epoch 5" (:func:`convergence_verdict`): within :data:`NEAR` (1 point) of the best full-image accuracy,
  the lottery-training run's own rule; a run whose full-image arm ends more than :data:`TRAINED` (5 points) under
  the dense model did not train long enough to have a "best" and is not comparable;
- "A above B" (:func:`ordering_verdict`): the 95% (Wilson) intervals are disjoint; overlapping intervals do not
  establish an order on the stored test images;
- thresholds stated by a paper ("30% free at 1 point", "cosine above 96%") are taken as stated.

Accuracies, sparsities and cosines are fractions in [0, 1]; the texts show percent. Sources:
LOTUS (the project's seed study: data lottery tickets, one-shot pruning of a ViT, ISSP);
Jaiswal et al., "The Emergence of Essential Sparsity in Large Pre-trained Models", NeurIPS 2023;
Jaiswal et al., "Instant Soup: Cheap Pruning Ensembles in A Single Pass Can Draw Lottery Tickets from Large
Models", ICML 2023; Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..core.tolerance import DEFAULT_EPS
from ..core.text import count_text

REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "not reproduced", "not comparable"
ABOUT = 0.05  # "about X%": within 5 points (absolute) of X
NEAR = 0.01  # "near-best": within 1 point of the best full-image accuracy (the lottery-training run's rule)
TRAINED = 0.05  # a training run tests convergence only if its full-image arm ends within 5 points of the dense model
CLAIM_EPOCH = 5  # LOTUS: near-best by the fifth epoch
ESSENTIAL_RANGE = (0.30, 0.50)  # Essential Sparsity: 30-50% of the weights free
ESSENTIAL_EPS = DEFAULT_EPS  # ... at no more than 1 point of accuracy (the default tolerance)
COSINE = 0.96  # Essential Sparsity: OMP-vs-LTH mask cosine above 96% inside that range
ORDER_RANGE = (0.70, 0.80)  # Instant Soup: ISP > LTH > OMP at 70-80% sparsity
TICKET_DENSITY = (0.10, 0.20)  # LTH: winning tickets at 10-20% of the original size
_TOL = 1e-9  # float slack at the thresholds (stored fractions are ratios of counts)


@dataclass(frozen=True)
class Claim:
    """A paper's claim, as the paper states it."""

    key: str  # stable id, e.g. "issp-data-fraction"
    source: str  # the paper
    claim: str  # what it says, in words
    number: str  # the paper's number


CLAIMS: dict[str, Claim] = {c.key: c for c in [
    Claim("one-shot-30", "LOTUS", "One-shot pruning of 30% of the weights keeps about 79% accuracy on CIFAR-10",
          "79% at 30% sparsity (CIFAR-10)"),
    Claim("lottery-epoch-5", "LOTUS", "Training on attention-selected data (data lottery tickets) reaches near-best "
          "accuracy by the fifth epoch", "near-best by epoch 5"),
    Claim("issp-data-fraction", "LOTUS", "ISSP with masks from 10% of the training data drops to about 50% accuracy",
          "about 50% at data fraction 10%"),
    Claim("essential-range", "Essential Sparsity (Jaiswal et al., NeurIPS 2023)", "30-50% of the weights can be "
          "removed by one-shot magnitude pruning at no more than 1 point of accuracy", "30-50% at <= 1 point"),
    Claim("omp-lth-cosine", "Essential Sparsity (Jaiswal et al., NeurIPS 2023)", "Inside that range, the one-shot "
          "magnitude (OMP) mask and the lottery ticket's mask have a cosine similarity above 96%", "cosine > 96%"),
    Claim("soup-order", "Instant Soup (Jaiswal et al., ICML 2023)", "At 70-80% sparsity Instant Soup Pruning beats "
          "lottery tickets (LTH), which beat OMP", "ISP > LTH > OMP at 70-80%"),
    Claim("lth-speed", "Lottery Ticket Hypothesis (Frankle & Carbin, ICLR 2019)", "Winning tickets at 10-20% of the "
          "network's size train at least as fast as the full network", "as fast at 10-20% of the size"),
]}
"""Claim key -> claim, in the order the Report lists them (docs/claims.md)."""


@dataclass(frozen=True)
class Verdict:
    verdict: str  # REPRODUCED, NOT_REPRODUCED or NOT_COMPARABLE
    why: str  # one sentence


@dataclass(frozen=True)
class ClaimCheck:
    """One claim beside LOTUS's number: what was measured, the verdict and why, and the stored runs behind it."""

    claim: Claim
    measured: str  # LOTUS's number in words ("—" when no stored run has it)
    value: float | None  # that number (a fraction), when there is one
    verdict: str
    why: str
    runs: tuple[str, ...] = field(default=())  # ids of the stored runs it was read from

    def to_dict(self) -> dict:
        return {"key": self.claim.key, "source": self.claim.source, "claim": self.claim.claim,
                "paper": self.claim.number, "lotus": self.measured, "value": self.value, "verdict": self.verdict,
                "why": self.why, "runs": list(self.runs)}


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _points(fraction: float) -> str:
    """An accuracy difference (a fraction) in points, singular or plural: "1 point", "5 points"."""
    return count_text(round(100 * fraction, 6), "point")


# ---------------------------------------------------------------------------- verdict rules (pure)
def about(measured: float, claimed: float, margin: float = ABOUT) -> bool:
    """Whether ``measured`` is "about" ``claimed``: within ``margin`` (absolute; 5 points by default), inclusive."""
    return abs(measured - claimed) <= margin + _TOL


def one_shot_verdict(dataset: str, accuracy: float | None) -> Verdict:
    """LOTUS: one-shot 30% keeps about 79% on CIFAR-10. Not comparable on any other dataset (another task, another
    accuracy scale) or without a one-shot point at exactly 30%; on ``cifar10`` reproduced when the accuracy is
    :func:`about` 79% (within 5 points)."""
    if dataset != "cifar10":
        return Verdict(NOT_COMPARABLE, f"the paper's number is on CIFAR-10 and this model is evaluated on {dataset}: "
                                       "accuracies on another task are not comparable")
    if accuracy is None:
        return Verdict(NOT_COMPARABLE, "no stored one-shot OMP point at 30% sparsity")
    ok = about(accuracy, 0.79)
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED,
                   f"{_pct(accuracy)} is {'within' if ok else 'more than'} {_points(ABOUT)} from 79%")


def convergence_verdict(summary: Mapping | None, dense_accuracy: float | None) -> Verdict:
    """LOTUS: near-best accuracy by epoch 5 on attention-selected data, from a lottery-training ``summary``.

    Not comparable when there is no run, when it stops before epoch 5, or when its full-image arm's best accuracy
    is more than :data:`TRAINED` (5 points) under ``dense_accuracy`` (the run is too small to train the model, so it
    has no "best" to be near). Otherwise reproduced when the lottery arm's accuracy at epoch 5 is within :data:`NEAR`
    (1 point) of the best full-image accuracy, inclusive."""
    if summary is None:
        return Verdict(NOT_COMPARABLE, "no lottery-training run is stored")
    epochs, best = int(summary["epochs"]), float(summary["best_full_accuracy"])
    if epochs < CLAIM_EPOCH:
        return Verdict(NOT_COMPARABLE, f"the stored run stops after epoch {epochs}, before epoch {CLAIM_EPOCH}")
    if dense_accuracy is not None and best < dense_accuracy - TRAINED - _TOL:
        return Verdict(NOT_COMPARABLE, f"the stored run is too small to test it: its full-image arm reaches at best "
                                       f"{_pct(best)} in {epochs} epochs against the dense model's {_pct(dense_accuracy)}"
                                       f" (more than {_points(TRAINED)} under), so it never nears a trained model")
    at5 = float(summary["lottery"]["accuracy"][CLAIM_EPOCH - 1])
    ok = at5 >= best - NEAR - _TOL
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED,
                   f"at epoch {CLAIM_EPOCH} the lottery arm has {_pct(at5)}, {'within' if ok else 'more than'} "
                   f"{_points(NEAR)} of the best full-image {_pct(best)}")


def issp_fraction_verdict(final_accuracy: float | None) -> Verdict:
    """LOTUS: ISSP with masks from 10% of the data drops to about 50%. Reproduced when the final (fine-tuned) ticket's
    accuracy is :func:`about` 50% (within 5 points); not comparable without an ISSP run at data fraction 0.1."""
    if final_accuracy is None:
        return Verdict(NOT_COMPARABLE, "no finished ISSP run at data fraction 0.1 is stored")
    ok = about(final_accuracy, 0.50)
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED,
                   f"its ticket ends at {_pct(final_accuracy)}, {'within' if ok else 'more than'} {_points(ABOUT)} "
                   "from 50%")


def essential_verdict(essential_sparsity: float | None, eps: float | None) -> Verdict:
    """Essential Sparsity: 30-50% of the weights free at no more than 1 point. From a sweep's OMP turning point
    measured at tolerance ``eps`` (a fraction: 0.01 = 1 point): not comparable without one or when ``eps`` is
    looser than 1 point; reproduced when at least 30% is free (a turning point of 30% or more, inclusive: more
    free weights than the range still bears the claim out), not reproduced below 30%."""
    if essential_sparsity is None or eps is None:
        return Verdict(NOT_COMPARABLE, "no stored sweep with an OMP turning point")
    if eps > ESSENTIAL_EPS + _TOL:
        return Verdict(NOT_COMPARABLE, f"the stored turning point allows {_points(eps)}, the claim "
                                       f"{_points(ESSENTIAL_EPS)}")
    lo, hi = ESSENTIAL_RANGE
    if essential_sparsity < lo - _TOL:
        return Verdict(NOT_REPRODUCED, f"only {_pct(essential_sparsity, 0)} is free at {_points(eps)}, under 30%")
    where = "inside" if essential_sparsity <= hi + _TOL else "above"
    return Verdict(REPRODUCED, f"{_pct(essential_sparsity, 0)} is free at {_points(eps)}, {where} the paper's "
                               "30-50%")


def cosine_verdict(rows: Sequence[Mapping]) -> Verdict:
    """Essential Sparsity: OMP-vs-LTH mask cosine above 96% inside the 30-50% range. ``rows``: the overall rows
    (sparsity, cosine, chance_cosine) of a stored OMP-vs-ticket table; the rounds whose sparsity lies in
    [30%, 50%] count. Reproduced when every such round's cosine is strictly above 96%; not comparable when no
    round falls in the range."""
    lo, hi = ESSENTIAL_RANGE
    inside = [r for r in rows if lo - _TOL <= r["sparsity"] <= hi + _TOL]
    if not inside:
        return Verdict(NOT_COMPARABLE, "no stored lottery-ticket round has a sparsity between 30% and 50%")
    text = "; ".join(f"{_pct(r['sparsity'])}: {_pct(r['cosine'], 2)} (chance {_pct(r['chance_cosine'])})" for r in inside)
    ok = all(r["cosine"] > COSINE for r in inside)
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED,
                   f"{'every' if ok else 'not every'} round in the range is above 96% ({text})")


def ordering_verdict(points: Mapping[str, Mapping]) -> Verdict:
    """Instant Soup: ISP above LTH above OMP at 70-80% sparsity. ``points``: ``{"ISSP", "LTH", "OMP"}`` -> a point
    (sparsity, accuracy, ci_low, ci_high) at one common sparsity, or an empty mapping when there is none. "Above"
    means disjoint 95% intervals (the upper one's ci_low above the lower one's ci_high); an order that holds only in
    the point estimates is not established, so it is not reproduced, and says so."""
    if not points:
        return Verdict(NOT_COMPARABLE, "no fine-tuned ISSP ticket, LTH round and fine-tuned OMP point share a sparsity "
                                       "between 70% and 80%")
    a, b, c = points["ISSP"], points["LTH"], points["OMP"]
    values = f"ISSP {_pct(a['accuracy'])}, LTH {_pct(b['accuracy'])}, OMP {_pct(c['accuracy'])}"
    if a["ci_low"] > b["ci_high"] and b["ci_low"] > c["ci_high"]:
        return Verdict(REPRODUCED, f"{values}, with disjoint 95% intervals")
    if a["accuracy"] > b["accuracy"] > c["accuracy"]:
        return Verdict(NOT_REPRODUCED, f"{values}: the order holds in the point estimates but the 95% intervals overlap, "
                                       "so it is not established on these test images")
    return Verdict(NOT_REPRODUCED, f"{values}: not in the claimed order")


def training_speed_verdict(ticket_iterations: int | None, dense_iterations: int | None,
                           density: float | None) -> Verdict:
    """LTH: winning tickets at 10-20% of the size train at least as fast. Needs the iteration at which each reaches
    its best (early-stopping) test accuracy, and a ticket density in [10%, 20%]; not comparable without them.
    Reproduced when the ticket's iteration is at most the dense network's."""
    if ticket_iterations is None or dense_iterations is None:
        return Verdict(NOT_COMPARABLE, "no stored run measures how fast a ticket trains: LOTUS's LTH rounds fine-tune a "
                                       "fixed number of steps from the pre-trained weights and store the test accuracy "
                                       "only at each round's end, while the paper times training from initialisation "
                                       "to its early-stopping iteration")
    if density is None or not TICKET_DENSITY[0] - _TOL <= density <= TICKET_DENSITY[1] + _TOL:
        return Verdict(NOT_COMPARABLE, "the ticket is not at 10-20% of the network's size")
    ok = ticket_iterations <= dense_iterations
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, f"the ticket reaches its best at iteration {ticket_iterations}"
                                                         f", the full network at {dense_iterations}")


# ---------------------------------------------------------------------------- picking the compared points
def at_sparsity(points: Sequence[Mapping], sparsity: float, tol: float = 1e-6) -> Mapping | None:
    """The point of ``points`` (each with ``sparsity``) at ``sparsity`` (within ``tol``), or None."""
    return next((p for p in points if abs(p["sparsity"] - sparsity) <= tol), None)


def common_point(issp: Sequence[Mapping], lth: Sequence[Mapping], omp: Sequence[Mapping],
                 span: tuple[float, float] = ORDER_RANGE) -> dict[str, Mapping]:
    """The sparsest sparsity in ``span`` where all three series have a point: ``{"ISSP", "LTH", "OMP"}`` -> that point
    (empty when there is none). Each series' points carry sparsity, accuracy, ci_low, ci_high."""
    for p in sorted(issp, key=lambda p: -p["sparsity"]):
        if span[0] - _TOL <= p["sparsity"] <= span[1] + _TOL:
            b, c = at_sparsity(lth, p["sparsity"]), at_sparsity(omp, p["sparsity"])
            if b is not None and c is not None:
                return {"ISSP": p, "LTH": b, "OMP": c}
    return {}


def check(key: str, measured: str, value: float | None, verdict: Verdict, runs: Sequence[str | None] = ()) -> ClaimCheck:
    """The :class:`ClaimCheck` of claim ``key`` (runs that are None are left out)."""
    return ClaimCheck(CLAIMS[key], measured, value, verdict.verdict, verdict.why, tuple(r for r in runs if r))


def summary_sentence(checks: Sequence[ClaimCheck]) -> str:
    """One sentence counting the verdicts."""
    count = {v: sum(c.verdict == v for c in checks) for v in (REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE)}
    return (f"Of {len(checks)} claims from the papers LOTUS builds on, {count[REPRODUCED]} reproduced here, "
            f"{count[NOT_REPRODUCED]} did not and {count[NOT_COMPARABLE]} cannot be tested by the stored runs (each "
            "says why); every number is read from a stored run, named in the table.")


__all__ = ["ABOUT", "CLAIMS", "COSINE", "Claim", "ClaimCheck", "NEAR", "NOT_COMPARABLE", "NOT_REPRODUCED",
           "REPRODUCED", "TRAINED", "Verdict", "about", "at_sparsity", "check", "common_point", "convergence_verdict",
           "cosine_verdict", "essential_verdict", "issp_fraction_verdict", "one_shot_verdict", "ordering_verdict",
           "summary_sentence", "training_speed_verdict"]
