"""The report's last section, paper claims vs measured here: for each claim of :data:`~lotus_core.views.claims.CLAIMS`
(the verdict rules live in :mod:`lotus_core.views.claims`), one reader below takes the number that tests it from the
report's stored runs. Nothing is computed; a result not stored makes its claim "not comparable", saying what is
missing (docs/claims.md)."""
from __future__ import annotations

from ...context import Context
from ...results.store import RunStatus
from .. import claims as c
from ...core.text import count_text
from .model import ReportOptions, Section, pct, points
from .stored import Stored


def claims_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    """Every claim checked by its rule on numbers read from the report's stored runs, as a table."""
    dense = stored.dense(options.limit)["accuracy"]
    checks = [reader(ctx, stored, dense) for reader in READERS]
    return Section.of("claims", c.summary_sentence(checks), table=[x.to_dict() for x in checks])


def one_shot_30(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """LOTUS: one-shot 30% (the sweep's OMP point at exactly 30%, fully evaluated)."""
    sweep = stored.sweep
    omp = [] if sweep is None else \
        sweep.frame[sweep.frame["method"] == "omp"].dropna(subset=["accuracy"]).to_dict("records")
    p30 = c.at_sparsity(omp, 0.30)
    acc = None if p30 is None else float(p30["accuracy"])
    return c.check("one-shot-30", "—" if acc is None else f"{pct(acc)} at 30% on {ctx.dataset} (one-shot OMP)",
                   acc, c.one_shot_verdict(ctx.dataset, acc), [sweep and sweep.run_id])


def lottery_epoch_5(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """LOTUS: near-best by epoch 5 (the lottery-training run)."""
    lottery = stored.lottery
    done = lottery is not None and lottery["status"] == RunStatus.DONE and lottery["summary"]
    summary = lottery["summary"] if done else None
    measured = "—" if summary is None else (
        f"lottery arm {pct(summary['lottery']['final_accuracy'])}, full images {pct(summary['full']['final_accuracy'])}"
        f" after {count_text(summary['epochs'], 'epoch')}")
    return c.check("lottery-epoch-5", measured, None if summary is None else summary["lottery"]["final_accuracy"],
                   c.convergence_verdict(summary, dense), [lottery["id"] if done else None])


def issp_data_fraction(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """LOTUS: ISSP at data fraction 0.1 (its fine-tuned ticket)."""
    issp = stored.issp_by_fraction.get(0.1)
    if issp is None and stored.issp is not None and stored.issp["config"].get("data_fraction") == 0.1 \
            and stored.issp["status"] == RunStatus.DONE:
        issp = stored.issp
    final = None if issp is None else ctx.store.points(issp["id"]).get("final")
    acc = None if final is None else float(final["accuracy"])
    return c.check("issp-data-fraction", "—" if final is None else
                   f"{pct(acc)} at {pct(final['sparsity'], 0)} sparsity, data fraction 10%",
                   acc, c.issp_fraction_verdict(acc), [final and issp["id"]])


def essential_range(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """Essential Sparsity: the sweep's OMP turning point at the tolerance it was found at."""
    sweep, eps = stored.sweep, stored.eps
    ess = None if sweep is None else sweep.essential.get("omp")
    value = None if ess is None else float(ess["essential_sparsity"])
    return c.check("essential-range", "—" if value is None else
                   f"{pct(value, 0)} free within {points(eps)} (OMP turning point)", value,
                   c.essential_verdict(value, eps), [ess and sweep.run_id])


def omp_lth_cosine(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """Essential Sparsity: OMP vs the ticket's masks (the stored omp-vs-ticket table of the LTH run)."""
    from ...results.runs import resolve
    from ..catalog import omp_vs_tickets_key

    lth = stored.lth
    table = None if lth is None else stored.use(resolve(ctx, "omp-vs-ticket", omp_vs_tickets_key(ctx, lth["id"])))
    rows = [] if table is None else [r for r in table["summary"]["rows"] if r.get("layer", "all") == "all"]
    inside = [r for r in rows if c.ESSENTIAL_RANGE[0] - 1e-9 <= r["sparsity"] <= c.ESSENTIAL_RANGE[1] + 1e-9]
    low = min(inside, key=lambda r: r["cosine"]) if inside else None
    return c.check("omp-lth-cosine", "—" if low is None else
                   f"lowest cosine in 30-50%: {pct(low['cosine'], 2)} at {pct(low['sparsity'])}",
                   None if low is None else float(low["cosine"]), c.cosine_verdict(rows), [table and table["id"]])


def soup_order(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """Instant Soup: ISSP (fine-tuned) > LTH > OMP fine-tuned with one round's budget, at one sparsity in 70-80%."""
    from ...results.runs import resolve
    from ..catalog import omp_finetune_config

    issp, lth = stored.issp, stored.lth
    issp_final = [] if issp is None or "final" not in issp["points"] else [issp["points"]["final"]]
    rounds = [] if lth is None else [p for k, p in lth["points"].items() if k.startswith("round-") and p["round"] > 0]
    ft = None if lth is None else stored.use(resolve(ctx, "sweep", omp_finetune_config(ctx, lth["id"])))
    ft_points = [] if ft is None else [p for p in ctx.store.points(ft["id"]).values()
                                       if p.get("method") == "omp" and p.get("accuracy") is not None]
    common = c.common_point(issp_final, rounds, [{**p, "sparsity": p.get("sparsity_reached", p["sparsity"])}
                                                 for p in ft_points])
    measured = "—" if not common else ", ".join(f"{k} {pct(p['accuracy'])}" for k, p in common.items()) + \
        f" at {pct(common['ISSP']['sparsity'])} (ISSP at data fraction {issp['config']['data_fraction']:g})"
    return c.check("soup-order", measured, None if not common else float(common["ISSP"]["accuracy"]),
                   c.ordering_verdict(common), [common and issp["id"], common and lth["id"], common and ft["id"]])


def lth_speed(ctx: Context, stored: Stored, dense: float) -> c.ClaimCheck:
    """LTH: tickets train at least as fast (no stored run times training to a given accuracy)."""
    lth = stored.lth
    measured = "—" if lth is None else (f"ticket at {pct(1 - lth['summary']['final_sparsity'], 0)} of the weights: "
                                        f"{pct(lth['summary']['final_accuracy'])} after "
                                        f"{count_text(lth['config']['steps'], 'step')}")
    return c.check("lth-speed", measured, None, c.training_speed_verdict(None, None, None), [lth and lth["id"]])


READERS = [one_shot_30, lottery_epoch_5, issp_data_fraction, essential_range, omp_lth_cosine, soup_order, lth_speed]
"""One reader per claim, in the order of :data:`~lotus_core.views.claims.CLAIMS`."""
