"""The report's pruning sections: the dense baseline, the essential-sparsity turning point (Jaiswal et al., NeurIPS
2023), OMP-vs-LTH mask similarity against chance, and ISSP vs OMP vs LTH (Instant Soup Pruning, Jaiswal et al.,
ICML 2023; Frankle & Carbin, ICLR 2019). Each reads stored runs through :class:`~.stored.Stored`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...context import Context
from ...pruning.essential import noise_warning
from ..figures import accuracy_lines, per_class_accuracy, similarity_curve, sparsity_curve
from .model import ReportOptions, Section, pct, points
from .stored import NotStored, Stored, read


def dense_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    dense = stored.dense(options.limit)
    per_class = pd.Series(dense["per_class"]).sort_values()
    fig = per_class_accuracy(dense, f"Accuracy of the unpruned model, class by class (dashed: all classes, "
                                    f"{pct(dense['accuracy'])})")
    lo, hi = dense["ci95"]
    sentence = (f"Before any pruning, the model labels {pct(dense['accuracy'])} of {dense['n']:,} test images correctly "
                f"(95% confidence interval {pct(lo)} to {pct(hi)}); it does best on {per_class.index[-1]} "
                f"({pct(per_class.iloc[-1])}) and worst on {per_class.index[0]} ({pct(per_class.iloc[0])}).")
    notes = [f"Warning: {ctx.head_problem}. These accuracies measure an untrained classifier."] if ctx.head_problem else []
    return Section.of("dense", sentence, fig, dense["accuracy"], notes=notes)


def essential_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ...pruning import PRUNERS

    result, eps = stored.sweep, stored.eps
    if result is None:
        raise NotStored("no sparsity curve is stored for this model yet")
    method = "omp" if "omp" in result.essential else next(iter(result.essential))
    ess = result.essential[method]
    dense = result.dense["accuracy"]
    name = f"{method.upper()} ({PRUNERS[method].help})" if method in PRUNERS else method
    sentence = (f"Pruning the {pct(ess['essential_sparsity'], 0)} least important weights at once with {name} keeps "
                f"accuracy within {points(eps)} of the unpruned {pct(dense)}: this turning point is the "
                "essential sparsity.")
    sentence += " " + _after_the_turn(result.frame[result.frame["method"] == method], ess["bracket"][1])
    noisy = noise_warning(dense, result.dense["n"], eps)
    sentence += f" {noisy}" if noisy else ""
    fig = sparsity_curve(result.frame, result.dense, result.essential, eps,
                         "Accuracy against sparsity; stars mark each method's turning point")
    return Section.of("essential", sentence, fig, ess["essential_sparsity"])


def _after_the_turn(curve: pd.DataFrame, first_drop: float | None) -> str:
    """What accuracy does at the first sparsity past the turning point (a bound where it was decided early)."""
    if first_drop is None:
        return f"Accuracy never fell further up to the highest sparsity tried, {pct(curve['sparsity'].max(), 0)}."
    below = curve.loc[(curve["sparsity"] - first_drop).abs() < 1e-9].iloc[0]
    if below["accuracy"] == below["accuracy"]:  # not NaN: fully evaluated
        return f"At {pct(first_drop, 0)} sparsity accuracy falls to {pct(float(below['accuracy']))}."
    return (f"At {pct(first_drop, 0)} sparsity accuracy falls to at most {pct(float(below['acc_high']))} "
            f"(decided after {int(below['seen'])} of {int(below['n'])} test images).")


def similarity_table(ctx: Context, lth: dict) -> pd.DataFrame:
    """OMP against each finished round of the LTH run ``lth``, overall (views.catalog.omp_vs_tickets,
    which stores it, so it is computed once)."""
    from ..catalog import omp_vs_tickets

    table = omp_vs_tickets(ctx, lth["id"])  # stored under a key naming the LTH run
    return table[table["layer"] == "all"].reset_index(drop=True) if "layer" in table else table  # overall rows


def similarity_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    if stored.lth is None:
        raise NotStored("no lottery-ticket (LTH) run with a finished round is stored yet")
    table = similarity_table(ctx, stored.lth)
    last = table.iloc[-1]
    gap = last["cosine"] - last["chance_cosine"]
    sentence = (f"At {pct(last['sparsity'])} sparsity, the lottery ticket's mask (round {int(last['round'])} of iterative "
                f"pruning and re-training) and the one-shot magnitude mask of the same sparsity have a cosine similarity "
                f"of {pct(last['cosine'])}; two random masks of the same layer-by-layer densities would reach "
                f"{pct(last['chance_cosine'])}, so the agreement is {100 * gap:.1f} points above chance.")
    fig = similarity_curve(table, None, "cosine", "OMP mask against the lottery ticket's mask, with the chance level")
    return Section.of("similarity", sentence, fig, float(last["cosine"]))


def rounds(run: dict) -> pd.DataFrame:
    """A ticket run's round points: round, sparsity, accuracy (sorted by round)."""
    rows = [p for k, p in run["points"].items() if k.startswith("round-")]
    return pd.DataFrame(rows, columns=["round", "sparsity", "accuracy"]).sort_values("round", ignore_index=True)


def comparison_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    lth, issp, sweep = stored.lth, stored.issp, stored.sweep
    if lth is None and issp is None:
        raise NotStored("no LTH or ISSP run is stored for this model yet")
    frames, parts, notes = [], [], []
    omp = None if sweep is None or "omp" not in sweep.essential else _omp_curve(sweep)
    if omp is not None:
        frames.append(omp.assign(series="OMP one-shot, no re-training"))
    else:
        notes.append("The one-shot OMP curve is missing: produce it on the Sparsity curves page.")
    for run, name in ((lth, "LTH"), (issp, "ISSP")):
        if run is None:
            notes.append(f"No {name} run is stored yet: launch one on the Soup page to add it.")
            continue
        series, point = _ticket_series(run, name)
        frames += series
        text = f"{name} {pct(point['accuracy'])} at {pct(point['sparsity'])} sparsity"
        if omp is not None:
            text += f" (one-shot OMP there: {pct(float(np.interp(point['sparsity'], omp['sparsity'], omp['accuracy'])))})"
        parts.append(text)
    value = float(_ticket_series(lth if lth is not None else issp, "")[1]["accuracy"])
    sentence = ("At the sparsest mask each method reached, accuracy is: " + "; ".join(parts) + ". OMP's value is read "
                "off its curve and needs no training at all.") + _by_fraction(stored.issp_by_fraction)
    fig = accuracy_lines(pd.concat(frames, ignore_index=True), sweep.dense["accuracy"] if sweep is not None else None,
                         "Accuracy against sparsity: one-shot OMP, lottery tickets (LTH) and Instant Soup (ISSP)")
    return Section.of("comparison", sentence, fig, value, notes=notes)


def _omp_curve(sweep) -> pd.DataFrame:
    """The sweep's fully evaluated OMP points with the dense model at sparsity 0 (sparsity, accuracy)."""
    return pd.concat([pd.DataFrame([{"sparsity": 0.0, "accuracy": sweep.dense["accuracy"]}]),
                      sweep.frame.loc[sweep.frame["method"] == "omp", ["sparsity", "accuracy"]]]
                     ).dropna(subset=["accuracy"]).sort_values("sparsity")  # points decided early have no accuracy


def _ticket_series(run: dict, name: str) -> tuple[list[pd.DataFrame], dict | pd.Series]:
    """A ticket run's charted series (its rounds; ISSP's fine-tuned ticket) and the point its sentence states:
    the final (fine-tuned) ticket where there is one, else the last round."""
    table = read(run, rounds)
    label = "LTH rounds (re-trained each round)" if name == "LTH" else "ISSP rounds (before the final fine-tune)"
    series = [table.assign(series=label)]
    final = run["points"].get("final")  # ISSP's fine-tuned ticket
    if final is None:
        return series, table.iloc[-1]
    series.append(pd.DataFrame([{"sparsity": final["sparsity"], "accuracy": final["accuracy"]}])
                  .assign(series="ISSP after its final fine-tune"))
    return series, final


def _by_fraction(by_fraction: dict[float, dict]) -> str:
    """ISSP's final accuracy by data fraction (the Soup page's data-fraction sweep), or nothing."""
    if not by_fraction:
        return ""
    return (" ISSP's final accuracy by the fraction of training data each look-ahead saw: " + ", ".join(
        f"{pct(f, 0)}: {pct(r['summary']['final_accuracy'])}" for f, r in by_fraction.items())
        + " (LOTUS saw about 50% with 10%).")
