"""The stakeholder report: one page of stored results for one model, in plain words.

Each section shows one plotly figure and one generated sentence that states the number the
figure shows; where the result behind a section is not stored yet, the section says which
dashboard page produces it instead of failing. The report reads the results store and
recomputes nothing expensive: the dense accuracy comes from :meth:`Context.dense_accuracy`
(stored after the first time), the OMP-vs-LTH similarity from the stored round masks, and the
patch-selection example uses the cheap ``cls`` attention scorer on a few images.

Sections (:data:`SECTIONS`), after the papers the dashboard relates to:

- dense accuracy, the baseline every result is compared with;
- the essential-sparsity curve and its turning point (Jaiswal et al., NeurIPS 2023);
- OMP-vs-LTH mask similarity against its chance level (the same paper's 96% claim), computed once
  per LTH run and stored as the result "omp-vs-ticket";
- ISSP vs OMP vs LTH accuracy (Instant Soup Pruning, Jaiswal et al., ICML 2023; Frankle & Carbin, ICLR 2019);
- a patch-selection example (a data lottery ticket: the least-attended patches dropped);
- the lottery-training convergence (lottery data against full images, epoch by epoch);
- does it run faster: the fastest measured configuration within eps of dense accuracy (the Speed page);
- paper claims vs measured here: each claim of the papers above and of LOTUS beside the stored number that tests
  it, with a verdict and why (:mod:`lotus_core.views.claims`, docs/claims.md).

The report is built from *pinned* runs (:func:`pinned`; a small table of the store): the demo's by default,
pinned and unpinned by the user from Experiments and the pages; trying another eps, batch size or method
elsewhere never changes it until that run is pinned. A store with nothing pinned yet for the model pins
what its first report chose (the demo's runs first, else the newest usable run of each kind measured on
the report's number of test images). Each section names its runs and where each was computed
(:func:`~lotus_core.results.runs.provenance_label`); pinned runs that disagree on the test-set size, the
precision used, the protocol or the test data are flagged in :attr:`Report.warnings`, never mixed silently.

Accuracies and sparsities are fractions in [0, 1]; sentences and figures show percent.
:meth:`Report.to_html` writes one self-contained HTML file (plotly.js embedded inline, no
CDN), which opens offline.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..core.context import Context
from ..core.errors import LotusError
from ..lottery.common import ticket_curve
from ..pruning.essential import noise_warning
from ..results.registry import get_experiment
from ..results.store import RunStatus
from ..training.evaluate import DEFAULT_LIMIT
from .figures import accuracy_lines, count_text, per_class_accuracy, similarity_curve, sparsity_curve, speed_frontier, titled

if TYPE_CHECKING:
    from ..pruning.sweep import SweepResult


@dataclass(frozen=True)
class ReportOptions:
    """What the report shows beyond the stored results."""

    limit: int = DEFAULT_LIMIT  # test images of the dense accuracy (fixed seeded subset)
    example_class: int = 0  # class of the patch-selection example images (index into the dataset's classes)
    example_images: int = 4  # how many example images
    drop: float = 0.1  # fraction of patches the example drops
    scorer: str = "cls"  # patch scorer of the example (cls: CLS attention of the last block, cheap)


@dataclass
class Section:
    """One section: a figure and the sentence stating its number, or a note on what is missing."""

    key: str  # stable id, e.g. "essential"
    title: str
    sentence: str  # the generated sentence (or, when missing, what to do)
    figure: go.Figure | None = None
    value: float | None = None  # the headline number the sentence states (a fraction)
    missing: str | None = None  # the page that produces the missing result (None: present)
    notes: list[str] = field(default_factory=list)  # secondary notes (e.g. a missing part of a comparison)
    runs: list[dict] = field(default_factory=list)  # the stored runs it states: {"run", "kind", "provenance"}
    table: list[dict] = field(default_factory=list)  # rows of a table the section shows (the claims: ClaimCheck.to_dict)

    def to_dict(self) -> dict:
        out = {"key": self.key, "title": self.title, "sentence": self.sentence, "value": self.value,
               "missing": self.missing, "notes": self.notes, "figure": self.figure is not None, "runs": self.runs}
        return {**out, "table": self.table} if self.table else out


@dataclass
class Report:
    model: str  # model id (name@checkpoint hash)
    dataset: str
    created: str  # local time the report was built, ISO format
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # pinned runs that disagree with each other

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def to_dict(self) -> dict:
        """JSON-ready: everything but the figures."""
        return {"model": self.model, "dataset": self.dataset, "created": self.created, "warnings": self.warnings,
                "sections": [s.to_dict() for s in self.sections]}

    def to_html(self) -> str:
        """One self-contained HTML page: plotly.js is embedded inline once (no CDN), so it opens offline."""
        parts, first = [f'<p class="warn">{html.escape(w)}</p>' for w in self.warnings], True
        for s in self.sections:
            parts.append(f"<section><h2>{html.escape(s.title)}</h2><p>{html.escape(s.sentence)}</p>")
            parts += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
            if s.table:
                parts.append(_html_table(s.table))
            parts += [f'<p class="prov">Run {html.escape(r["run"])} ({html.escape(r["kind"])}): '
                      f'{html.escape(r["provenance"])}</p>' for r in s.runs]
            if s.figure is not None:
                parts.append(s.figure.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False}))
                first = False
            parts.append("</section>")
        return _PAGE.format(title=html.escape(f"LOTUS report: {self.model} on {self.dataset}"),
                            meta=html.escape(f"Model {self.model} on {self.dataset}; built {self.created} from the "
                                             "LOTUS results store."), body="\n".join(parts))


TABLE_COLUMNS = {"claim": "Claim", "source": "Source", "paper": "Paper's number", "lotus": "LOTUS's number",
                 "verdict": "Verdict", "why": "Why", "runs": "Stored run"}
"""A section table's columns as shown (the page and the HTML export): row key -> heading."""


def table_frame(rows: list[dict]) -> pd.DataFrame:
    """A section's table rows as shown: the :data:`TABLE_COLUMNS` it has, headed in words (run ids joined)."""
    frame = pd.DataFrame(rows)
    frame = frame[[c for c in TABLE_COLUMNS if c in frame]]
    if "runs" in frame:
        frame["runs"] = frame["runs"].map(", ".join)
    return frame.rename(columns=TABLE_COLUMNS)


def _html_table(rows: list[dict]) -> str:
    frame = table_frame(rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f'<table class="claims"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#212121}}
h2{{margin-top:2em}} .note{{color:#616161;font-style:italic}} .meta{{color:#757575}}
.prov{{color:#757575;font-size:0.85em}} .warn{{color:#b71c1c}}
table.claims{{border-collapse:collapse;font-size:0.9em}} table.claims td,table.claims th{{border:1px solid #e0e0e0;
padding:4px 6px;text-align:left;vertical-align:top}}</style></head>
<body><h1>{title}</h1><p class="meta">{meta}</p>
{body}
</body></html>
"""


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


# ---------------------------------------------------------------------------- stored results
class Stored:
    """The stored results the report draws on for ``ctx``'s model and dataset, each looked up once: among the
    pinned runs (:func:`pinned`), the newest finished run of a kind, else the newest one with some finished
    points. With nothing pinned yet for the model, the demo's runs come first, then the newest measured on
    ``limit`` test images (one protocol: a 200-image ticket is never set against 2,000-image OMP figures;
    runs without a test-image count, e.g. patch scores, always count), and what is chosen gets pinned.
    Whether a run has something to show is read off its kind's registered curve
    (:mod:`lotus_core.results.registry`). Every run a section reads is recorded in :attr:`used`."""

    def __init__(self, ctx: Context, limit: int = DEFAULT_LIMIT):
        self.ctx = ctx
        self.limit = limit
        self.pins = ctx.store.pins(ctx.model_id)
        self.fresh = not self.pins  # nothing pinned or unpinned yet: this report's choice is pinned
        self.demo = set(_demo_runs(ctx).values()) if self.fresh else set()
        self.used: dict[str, dict] = {}  # run id -> run, every run the report states
        self.reading: list[str] = []  # ids of the runs the section being built states

    def use(self, run: dict | None) -> dict | None:
        """Record that the section being built states ``run`` (returned as it is)."""
        if run is not None:
            self.used.setdefault(run["id"], run)
            if run["id"] not in self.reading:
                self.reading.append(run["id"])
        return run

    def _measured_alike(self, runs: pd.DataFrame) -> pd.DataFrame:
        if not self.fresh:  # pinned runs are used as pinned; disagreements are flagged (Report.warnings)
            return runs[runs["id"].map(lambda i: self.pins.get(i, False)).astype(bool)]
        alike = runs["config"].map(lambda c: c.get("limit", self.limit) == self.limit).astype(bool)
        return runs[alike | runs["id"].isin(self.demo)]

    def latest(self, kind: str, usable: Callable[[dict], bool] | None = None) -> dict | None:
        """The newest usable run of ``kind`` (finished ones first) as a dict with its points; by default
        a run is usable when its kind's curve has a point."""
        spec = get_experiment(kind)
        usable = usable or (lambda r: bool(spec.curve(r["points"], r["summary"])))
        runs = self.ctx.store.runs(kind=kind, model=self.ctx.model_id)
        runs = self._measured_alike(runs[runs["dataset"] == self.ctx.dataset])
        runs = runs.assign(done=runs["status"] == RunStatus.DONE, demo=runs["id"].isin(self.demo))
        runs = runs.sort_values(["demo", "done", "created"], ascending=False)
        for row in runs.to_dict(orient="records"):
            row["points"] = self.ctx.store.points(row["id"])
            if usable(row):
                return row
        return None

    def dense(self, limit: int) -> dict:
        """The dense accuracy summary: the pinned evaluation, else (nothing pinned yet, or no evaluation pinned)
        the stored one on ``limit`` images (:meth:`Context.dense_accuracy`: computed once when missing)."""
        run = None if self.fresh else self.latest("evaluate", lambda r: r["status"] == RunStatus.DONE
                                                  and "per_class" in (r["summary"] or {}))
        if run is None:  # the default policy's evaluation (the demo's, where it is stored)
            run = self.ctx.store.get_run(self.ctx.dense_accuracy(limit=limit)["run_id"])
        self.use(run)
        return {**run["summary"], "run_id": run["id"]}

    @property
    def sweep(self) -> SweepResult | None:
        """The newest finished sweep with a refined OMP turning point, else with an OMP curve, else any, or None."""
        run, result = self._sweep
        self.use(run)
        return result

    @cached_property
    def _sweep(self) -> tuple[dict | None, SweepResult | None]:
        from ..pruning.sweep import sweep_result

        def done(r: dict) -> bool:
            return r["status"] == RunStatus.DONE

        def omp(r: dict) -> bool:
            return done(r) and "omp" in r["summary"]["essential"]

        run = self.latest("sweep", lambda r: omp(r) and r["config"].get("refine")) or self.latest("sweep", omp) \
            or self.latest("sweep", done)
        return run, None if run is None else sweep_result(self.ctx, run["summary"])

    @property
    def lth(self) -> dict | None:
        """The newest LTH run with a pruned round (its curve goes past sparsity 0)."""
        return self.use(self._lth)

    @cached_property
    def _lth(self) -> dict | None:
        return self.latest("lth", lambda r: any(row["x"] > 0 for row in ticket_curve(r["points"], r["summary"])))

    @property
    def issp(self) -> dict | None:
        return self.use(self._issp)

    @cached_property
    def _issp(self) -> dict | None:
        return self.latest("issp")

    @property
    def issp_by_fraction(self) -> dict[float, dict]:
        """Data fraction f -> the newest finished ISSP run with that f and otherwise the settings of
        :attr:`issp` (the data-fraction sweep of the Soup page), when there are at least two such fractions."""
        for run in self._issp_by_fraction.values():
            self.use(run)
        return self._issp_by_fraction

    @cached_property
    def _issp_by_fraction(self) -> dict[float, dict]:
        if self._issp is None or self._issp["status"] != RunStatus.DONE:
            return {}
        base = {k: v for k, v in self._issp["config"].items() if k != "data_fraction"}
        runs = self.ctx.store.runs(kind="issp", model=self.ctx.model_id)
        runs = self._measured_alike(runs[runs["dataset"] == self.ctx.dataset])
        out: dict[float, dict] = {}
        for row in runs[runs["status"] == RunStatus.DONE].to_dict(orient="records"):  # newest first
            f = row["config"]["data_fraction"]
            if f not in out and {k: v for k, v in row["config"].items() if k != "data_fraction"} == base:
                out[f] = row
        return dict(sorted(out.items())) if len(out) >= 2 else {}

    @property
    def speed(self) -> dict | None:
        return self.use(self._speed)

    @cached_property
    def _speed(self) -> dict | None:
        return self.latest("speed", lambda r: r["status"] == "done")

    @property
    def lottery(self) -> dict | None:
        return self.use(self._lottery)

    @cached_property
    def _lottery(self) -> dict | None:
        return self.latest("lottery-train")


def _rounds(run: dict) -> pd.DataFrame:
    """A ticket run's round points: round, sparsity, accuracy (sorted by round)."""
    rows = [p for k, p in run["points"].items() if k.startswith("round-")]
    return pd.DataFrame(rows, columns=["round", "sparsity", "accuracy"]).sort_values("round", ignore_index=True)


# ---------------------------------------------------------------------------- sections
def dense_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    dense = stored.dense(options.limit)
    per_class = pd.Series(dense["per_class"]).sort_values()
    fig = per_class_accuracy(dense, f"Accuracy of the unpruned model, class by class (dashed: all classes, "
                                    f"{_pct(dense['accuracy'])})")
    lo, hi = dense["ci95"]
    sentence = (f"Before any pruning, the model labels {_pct(dense['accuracy'])} of {dense['n']:,} test images correctly "
                f"(95% confidence interval {_pct(lo)} to {_pct(hi)}); it does best on {per_class.index[-1]} "
                f"({_pct(per_class.iloc[-1])}) and worst on {per_class.index[0]} ({_pct(per_class.iloc[0])}).")
    notes = [f"Warning: {ctx.head_problem}. These accuracies measure an untrained classifier."] if ctx.head_problem else []
    return Section("dense", "How accurate is the model before pruning?", sentence, fig, dense["accuracy"], notes=notes)


def essential_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ..pruning import PRUNERS

    result = stored.sweep
    if result is None:
        return _missing("essential", "How much can be pruned at almost no cost?", "Sparsity curves",
                        "no sparsity curve is stored for this model yet")
    method = "omp" if "omp" in result.essential else next(iter(result.essential))
    eps = result.config.eps if result.config else ctx.store.get_run(result.run_id)["config"].get("eps", 0.01)
    ess = result.essential[method]
    dense = result.dense["accuracy"]
    name = f"{method.upper()} ({PRUNERS[method].help})" if method in PRUNERS else method
    sentence = (f"Pruning the {_pct(ess['essential_sparsity'], 0)} least important weights at once with {name} keeps "
                f"accuracy within {count_text(round(100 * eps, 6), 'point')} of the unpruned {_pct(dense)}: this turning point is the "
                "essential sparsity.")
    first_drop = ess["bracket"][1]
    curve = result.frame[result.frame["method"] == method]
    if first_drop is not None:
        below = curve.loc[(curve["sparsity"] - first_drop).abs() < 1e-9].iloc[0]
        sentence += (f" At {_pct(first_drop, 0)} sparsity accuracy falls to {_pct(float(below['accuracy']))}."
                     if below["accuracy"] == below["accuracy"] else  # not NaN: fully evaluated
                     f" At {_pct(first_drop, 0)} sparsity accuracy falls to at most {_pct(float(below['acc_high']))} "
                     f"(decided after {int(below['seen'])} of {int(below['n'])} test images).")
    else:
        sentence += f" Accuracy never fell further up to the highest sparsity tried, {_pct(curve['sparsity'].max(), 0)}."
    noisy = noise_warning(dense, result.dense["n"], eps)
    sentence += f" {noisy}" if noisy else ""
    fig = sparsity_curve(result.frame, result.dense, result.essential, eps,
                         "Accuracy against sparsity; stars mark each method's turning point")
    return Section("essential", "How much can be pruned at almost no cost?", sentence, fig, ess["essential_sparsity"])


def similarity_table(ctx: Context, lth: dict) -> pd.DataFrame:
    """OMP against each finished round of the LTH run ``lth``, overall (lottery.catalog.omp_vs_tickets,
    which stores it, so it is computed once)."""
    from .catalog import omp_vs_tickets

    table = omp_vs_tickets(ctx, lth["id"])  # stored under a key naming the LTH run
    return table[table["layer"] == "all"].reset_index(drop=True) if "layer" in table else table  # overall rows


def similarity_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    title = "Do lottery tickets and one-shot pruning keep the same weights?"
    if stored.lth is None:
        return _missing("similarity", title, "Soup", "no lottery-ticket (LTH) run with a finished round is stored yet")
    table = similarity_table(ctx, stored.lth)
    last = table.iloc[-1]
    gap = last["cosine"] - last["chance_cosine"]
    sentence = (f"At {_pct(last['sparsity'])} sparsity, the lottery ticket's mask (round {int(last['round'])} of iterative "
                f"pruning and re-training) and the one-shot magnitude mask of the same sparsity have a cosine similarity "
                f"of {_pct(last['cosine'])}; two random masks of the same layer-by-layer densities would reach "
                f"{_pct(last['chance_cosine'])}, so the agreement is {100 * gap:.1f} points above chance.")
    fig = similarity_curve(table, None, "cosine", "OMP mask against the lottery ticket's mask, with the chance level")
    return Section("similarity", title, sentence, fig, float(last["cosine"]))


def comparison_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    title = "Are lottery tickets and Instant Soup worth their training?"
    lth, issp, sweep = stored.lth, stored.issp, stored.sweep
    if lth is None and issp is None:
        return _missing("comparison", title, "Soup", "no LTH or ISSP run is stored for this model yet")
    frames, parts, notes = [], [], []
    omp = None
    if sweep is not None and "omp" in sweep.essential:
        omp = pd.concat([pd.DataFrame([{"sparsity": 0.0, "accuracy": sweep.dense["accuracy"]}]),
                         sweep.frame.loc[sweep.frame["method"] == "omp", ["sparsity", "accuracy"]]]
                        ).dropna(subset=["accuracy"]).sort_values("sparsity")  # points decided early have no accuracy
        frames.append(omp.assign(series="OMP one-shot, no re-training"))
    else:
        notes.append("The one-shot OMP curve is missing: produce it on the Sparsity curves page.")
    for run, name in ((lth, "LTH"), (issp, "ISSP")):
        if run is None:
            notes.append(f"No {name} run is stored yet: launch one on the Soup page to add it.")
            continue
        rounds = _rounds(run)
        label = "LTH rounds (re-trained each round)" if name == "LTH" else "ISSP rounds (before the final fine-tune)"
        frames.append(rounds.assign(series=label))
        final = run["points"].get("final")  # ISSP's fine-tuned ticket
        point = final if final is not None else rounds.iloc[-1]
        if final is not None:
            frames.append(pd.DataFrame([{"sparsity": final["sparsity"], "accuracy": final["accuracy"]}])
                          .assign(series="ISSP after its final fine-tune"))
        text = f"{name} {_pct(point['accuracy'])} at {_pct(point['sparsity'])} sparsity"
        if omp is not None:
            text += f" (one-shot OMP there: {_pct(float(np.interp(point['sparsity'], omp['sparsity'], omp['accuracy'])))})"
        parts.append(text)
    main = lth if lth is not None else issp
    value = float((main["points"].get("final") or _rounds(main).iloc[-1])["accuracy"])
    sentence = ("At the sparsest mask each method reached, accuracy is: " + "; ".join(parts) + ". OMP's value is read "
                "off its curve and needs no training at all.")
    by_fraction = stored.issp_by_fraction
    if by_fraction:
        sentence += (" ISSP's final accuracy by the fraction of training data each look-ahead saw: " + ", ".join(
            f"{_pct(f, 0)}: {_pct(r['summary']['final_accuracy'])}" for f, r in by_fraction.items())
            + " (LOTUS saw about 50% with 10%).")
    frame = pd.concat(frames, ignore_index=True)
    fig = accuracy_lines(frame, sweep.dense["accuracy"] if sweep is not None else None,
                         "Accuracy against sparsity: one-shot OMP, lottery tickets (LTH) and Instant Soup (ISSP)")
    return Section("comparison", title, sentence, fig, value, notes=notes)


def patches_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ..patches.analysis import class_indices, explain_images
    from ..patches.figures import patch_overlays

    title = "Which parts of an image does the model need?"
    classes = ctx.test.classes
    label = min(max(0, options.example_class), len(classes) - 1)
    try:
        rep = explain_images(ctx, options.scorer, options.drop,
                             indices=class_indices(ctx.test, label, options.example_images))
    except LotusError as exc:
        return Section("patches", title, f"{exc}", missing="Patches")
    n, p = len(rep.scores), rep.grid.num_patches
    unchanged = rep.unchanged_lottery
    sentence = (f"The model's attention ranks the {p} patches of each image; hiding the {p - rep.kept_count} it "
                f"attends to least ({_pct(options.drop, 0)}, washed out in grey) leaves its answer unchanged on "
                f"{unchanged} of {n} example {classes[label]} images.")
    titles = [f"#{i}: {classes[int(a)]} -> {classes[int(b)]}"
              for i, a, b in zip(rep.indices, rep.prediction, rep.prediction_lottery)]
    fig = patch_overlays(rep.model_images, rep.scores, rep.keep, rep.grid, titles)
    top = fig.layout.margin.t
    titled(fig, "Patch importance (brighter = more attended); titles: answer on the whole image -> with the grey "
                "patches hidden", above=top)
    fig.update_layout(height=fig.layout.height + fig.layout.margin.t - top)
    return Section("patches", title, sentence, fig, unchanged / n if n else None)


def convergence_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ..patches.ticket_training import epoch_frame
    from ..patches.figures import convergence

    title = "Does training on the kept patches learn as fast?"
    run = stored.lottery
    if run is None:
        return _missing("convergence", title, "Patches", "no lottery-training run is stored for this model yet")
    frame = epoch_frame(ctx, run["id"])
    summary, drop = run["summary"], run["config"]["drop"]
    if run["status"] == RunStatus.DONE and summary:
        lot, full = summary["lottery"], summary["full"]
        epochs, best_txt = summary["epochs"], _pct(summary["best_full_accuracy"])
        e_lot, e_full = lot["epochs_to_within_1pt"], full["epochs_to_within_1pt"]
        reach = (f"it comes within 1 point of the best full-image accuracy ({best_txt}) at epoch {e_lot}" if e_lot else
                 f"it does not come within 1 point of the best full-image accuracy ({best_txt}) in {epochs} epochs")
        sentence = (f"Trained on data lottery tickets ({_pct(drop, 0)} of each image's patches hidden), the model reaches "
                    f"{_pct(lot['final_accuracy'])} after {epochs} epochs, against {_pct(full['final_accuracy'])} "
                    f"on full images; {reach} (full images: "
                    f"{f'epoch {e_full}' if e_full else f'not within {epochs} epochs'}).")
        if lot.get("final_ticket_accuracy") is not None:  # runs stored before the ticket test lack it
            sentence += (f" On the test images' own tickets it scores {_pct(lot['final_ticket_accuracy'])} (the "
                         f"full-image model: {_pct(full['final_ticket_accuracy'])}): a large gap to its whole-image "
                         "accuracy means the hidden patches' positions, not the image, taught it.")
        value, best = lot["final_accuracy"], summary["best_full_accuracy"]
    else:
        last = frame.groupby("arm")["accuracy"].last().reindex(["lottery", "full"])
        sentence = (f"After {count_text(int(frame['epoch'].max()), 'finished epoch')} of a run that is {run['status']}: lottery "
                    f"tickets {_pct(last['lottery'])}, full images {_pct(last['full'])}.")
        value, best = float(last["lottery"]), None
    return Section("convergence", title, sentence, convergence(frame, best), value)


def speed_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ..speed.run import EPS, measured_with, speed_result, speedup_text

    title = "Does it run faster?"
    run = stored.speed
    if run is None:
        return _missing("speed", title, "Speed", "no speed measurement is stored for this model yet")
    result = speed_result(ctx, run["summary"])
    eps, batch = EPS, max(result.batch_sizes)  # the device's best batch too, when the run searched for it
    rows = result.at(batch)
    dense = rows[rows["method"] == "dense"].iloc[0]
    # only reliable measurements are quoted (speed/run.py: interleaved rounds, an interval, a machine not busy)
    fast = rows[(rows["drop"] <= eps + 1e-12) & (rows["method"] != "dense") & rows["reliable"]]
    where = f"On {dense['device']} with {count_text(int(dense['threads']), 'thread')}, at batch {batch}"
    doubt = rows[~rows["reliable"]]
    if fast.empty and len(doubt):
        reason = next(iter(doubt["unreliable"].dropna()), "measured once, without an interval")
        sentence = (f"{where}, {len(doubt)} of {len(rows)} measurements are unreliable ({reason}) and no reliable one "
                    "within {:g} point of the dense accuracy runs faster: nothing is quoted; measure again on the Speed "
                    "page when the machine is quieter.".format(100 * eps))
        value = None
    elif fast.empty:
        sentence = (f"{where}, no measured configuration stays within {100 * eps:g} point of the dense "
                    f"{_pct(result.dense['accuracy'])}: none runs faster at that accuracy.")
        value = 1.0
    else:
        best = fast.loc[fast["speedup"].idxmax()]
        sentence = (f"{where}, the fastest configuration within {100 * eps:g} point of the dense accuracy is {best['method']} "
                    f"{best['setting']}: {best['speedup']:.2f}x the dense speed (95% interval "
                    f"{speedup_text(best).partition('(')[2].rstrip(')')}, median of {int(best['rounds'])} interleaved rounds; "
                    f"{best['latency_ms']:.3g} ms against {dense['latency_ms']:.3g} ms per batch) at "
                    f"{_pct(best['accuracy'])} against {_pct(result.dense['accuracy'])}.")
        value = float(best["speedup"])
    masked = rows[(rows["method"] == "masked") & rows["reliable"]]
    if len(masked):
        sentence += (f" Zeros alone do not help: the masked dense model runs at {masked['speedup'].min():.2f}x to "
                     f"{masked['speedup'].max():.2f}x.")
    fig = speed_frontier(rows, result.dense["accuracy"], eps, title=f"Accuracy against measured latency, batch {batch} "
                         f"({dense['device']}, {int(dense['threads'])} threads, torch {measured_with(run, 'torch_version')})")
    return Section("speed", title, sentence, fig, value)


def claims_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    """Paper claims vs measured here: each claim of :data:`~lotus_core.views.claims.CLAIMS` checked by its rule on
    numbers read from the report's stored runs (nothing is computed; a result not stored makes its claim "not
    comparable", saying what is missing)."""
    from . import claims as c
    from .catalog import omp_finetune_config, omp_vs_tickets_key
    from ..results.runs import resolve

    dense = stored.dense(options.limit)["accuracy"]
    sweep, lth, lottery = stored.sweep, stored.lth, stored.lottery
    checks = []
    # LOTUS: one-shot 30% (the sweep's OMP point at exactly 30%, fully evaluated)
    omp = [] if sweep is None else sweep.frame[(sweep.frame["method"] == "omp")].dropna(subset=["accuracy"]).to_dict("records")
    p30 = c.at_sparsity(omp, 0.30)
    acc30 = None if p30 is None else float(p30["accuracy"])
    checks.append(c.check("one-shot-30", "—" if acc30 is None else f"{_pct(acc30)} at 30% on {ctx.dataset} (one-shot OMP)",
                          acc30, c.one_shot_verdict(ctx.dataset, acc30), [sweep and sweep.run_id]))
    # LOTUS: near-best by epoch 5 (the lottery-training run)
    done = lottery is not None and lottery["status"] == RunStatus.DONE and lottery["summary"]
    summary = lottery["summary"] if done else None
    measured = "—" if summary is None else (
        f"lottery arm {_pct(summary['lottery']['final_accuracy'])}, full images {_pct(summary['full']['final_accuracy'])}"
        f" after {summary['epochs']} epochs")
    checks.append(c.check("lottery-epoch-5", measured, None if summary is None else summary["lottery"]["final_accuracy"],
                          c.convergence_verdict(summary, dense), [lottery["id"] if done else None]))
    # LOTUS: ISSP at data fraction 0.1 (its fine-tuned ticket)
    issp = stored.issp_by_fraction.get(0.1)
    if issp is None and stored.issp is not None and stored.issp["config"].get("data_fraction") == 0.1 \
            and stored.issp["status"] == RunStatus.DONE:
        issp = stored.issp
    final = None if issp is None else ctx.store.points(issp["id"]).get("final")
    acc = None if final is None else float(final["accuracy"])
    checks.append(c.check("issp-data-fraction", "—" if final is None else
                          f"{_pct(acc)} at {_pct(final['sparsity'], 0)} sparsity, data fraction 10%",
                          acc, c.issp_fraction_verdict(acc), [final and issp["id"]]))
    # Essential Sparsity: the sweep's OMP turning point at its tolerance
    ess = None if sweep is None else sweep.essential.get("omp")
    eps = None if sweep is None else (sweep.config.eps if sweep.config else
                                      ctx.store.get_run(sweep.run_id)["config"].get("eps", 0.01))
    value = None if ess is None else float(ess["essential_sparsity"])
    checks.append(c.check("essential-range", "—" if value is None else
                          f"{_pct(value, 0)} free within {100 * eps:g} point (OMP turning point)", value,
                          c.essential_verdict(value, eps), [ess and sweep.run_id]))
    # Essential Sparsity: OMP vs the ticket's masks (the stored omp-vs-ticket table of the LTH run)
    table = None if lth is None else stored.use(resolve(ctx, "omp-vs-ticket", omp_vs_tickets_key(ctx, lth["id"])))
    rows = [] if table is None else [r for r in table["summary"]["rows"] if r.get("layer", "all") == "all"]
    inside = [r for r in rows if c.ESSENTIAL_RANGE[0] - 1e-9 <= r["sparsity"] <= c.ESSENTIAL_RANGE[1] + 1e-9]
    low = min(inside, key=lambda r: r["cosine"]) if inside else None
    checks.append(c.check("omp-lth-cosine", "—" if low is None else
                          f"lowest cosine in 30-50%: {_pct(low['cosine'], 2)} at {_pct(low['sparsity'])}",
                          None if low is None else float(low["cosine"]), c.cosine_verdict(rows),
                          [table and table["id"]]))
    # Instant Soup: ISSP (fine-tuned) > LTH > OMP fine-tuned with one round's budget, at one sparsity in 70-80%
    issp_run = stored.issp
    issp_final = [] if issp_run is None or "final" not in issp_run["points"] else [issp_run["points"]["final"]]
    rounds = [] if lth is None else [p for k, p in lth["points"].items() if k.startswith("round-") and p["round"] > 0]
    ft = None if lth is None else stored.use(resolve(ctx, "sweep", omp_finetune_config(ctx, lth["id"])))
    ft_points = [] if ft is None else [p for p in ctx.store.points(ft["id"]).values()
                                       if p.get("method") == "omp" and p.get("accuracy") is not None]
    points = c.common_point(issp_final, rounds, [{**p, "sparsity": p.get("sparsity_reached", p["sparsity"])}
                                                 for p in ft_points])
    measured = "—" if not points else ", ".join(f"{k} {_pct(p['accuracy'])}" for k, p in points.items()) + \
        f" at {_pct(points['ISSP']['sparsity'])} (ISSP at data fraction {issp_run['config']['data_fraction']:g})"
    checks.append(c.check("soup-order", measured, None if not points else float(points["ISSP"]["accuracy"]),
                          c.ordering_verdict(points), [points and issp_run["id"], points and lth["id"],
                                                       points and ft["id"]]))
    # LTH: tickets train at least as fast (no stored run times training to a given accuracy)
    measured = "—" if lth is None else (f"ticket at {_pct(1 - lth['summary']['final_sparsity'], 0)} of the weights: "
                                        f"{_pct(lth['summary']['final_accuracy'])} after {lth['config']['steps']} steps")
    checks.append(c.check("lth-speed", measured, None, c.training_speed_verdict(None, None, None),
                          [lth and lth["id"]]))
    return Section("claims", "Paper claims vs measured here", c.summary_sentence(checks),
                   table=[x.to_dict() for x in checks])


def _missing(key: str, title: str, page: str, what: str) -> Section:
    return Section(key, title, f"Missing: {what}; produce it on the {page} page (measured on the sidebar's number of "
                   "test images, the one this report uses).", missing=page)


SECTIONS: list[tuple[str, Callable[[Context, ReportOptions, Stored], Section]]] = [
    ("Dense accuracy", dense_section),
    ("Essential sparsity", essential_section),
    ("OMP vs LTH similarity", similarity_section),
    ("ISSP vs OMP vs LTH", comparison_section),
    ("Patch selection", patches_section),
    ("Lottery-training convergence", convergence_section),
    ("Speed", speed_section),
    ("Paper claims vs measured here", claims_section),
]
"""(progress label, builder) in report order."""

SECTION_PAGES = {"dense": "Overview", "essential": "Sparsity curves", "similarity": "Soup", "comparison": "Soup",
                 "patches": "Patches", "convergence": "Patches", "speed": "Speed",
                 "claims": "Experiments"}
"""Section key -> the page that produces (and explores) its result."""


def build_report(ctx: Context, options: ReportOptions = ReportOptions(),
                 on_progress: Callable[[int, int, str], None] | None = None) -> Report:
    """The report for ``ctx``'s model and dataset from the stored results (see the module docstring).

    ``on_progress(done, total, label)`` is called before each section. A section whose stored
    result cannot be read (a LotusError, or a result written by another version) says so and
    names the page that produces it again, instead of failing the report.
    """
    stored, sections = Stored(ctx, options.limit), []
    for i, (label, build) in enumerate(SECTIONS):
        if on_progress is not None:
            on_progress(i, len(SECTIONS), label)
        stored.reading = []
        try:
            sections.append(build(ctx, options, stored))
            sections[-1].runs = [_named(ctx, stored.used[rid]) for rid in stored.reading]
        except Exception as exc:  # noqa: BLE001 - a report never fails on one bad stored result
            key = build.__name__.removesuffix("_section")
            reason = str(exc) if isinstance(exc, LotusError) else f"{type(exc).__name__}: {exc}"
            sections.append(Section(key, label, f"This section could not be built from the stored results ({reason}); "
                                                f"produce them again on the {SECTION_PAGES[key]} page.",
                                    missing=SECTION_PAGES[key]))
    if stored.fresh:  # the first report of this model: what it chose stays its story until the user pins
        for run_id in stored.used:
            ctx.store.set_pin(run_id, True)
    return Report(ctx.model_id, ctx.dataset, time.strftime("%Y-%m-%d %H:%M"), sections,
                  disagreements(list(stored.used.values())))


def _named(ctx: Context, run: dict) -> dict:
    from ..results.runs import provenance_label

    return {"run": run["id"], "kind": run["kind"], "provenance": provenance_label(ctx, run["id"])}


def _demo_runs(ctx: Context) -> dict[str, str]:
    from .demo import demo_runs

    return demo_runs(ctx)


COMPARED = {  # what pinned runs must share to be set side by side: fact -> how it is read off a run
    "test-set size": lambda r: (r["config"] or {}).get("limit"),
    "precision": lambda r: ((r.get("provenance") or {}).get("precision")
                            or ((r["config"] or {}).get("computed") or {}).get("precision")),
    "test data": lambda r: ((r["config"] or {}).get("data") or {}).get("test"),
    "protocol": lambda r: (r["config"] or {}).get("protocol"),
}


def disagreements(runs: list[dict]) -> list[str]:
    """One warning per fact of :data:`COMPARED` on which ``runs`` (the report's) differ, naming the runs on
    each side; runs that do not record a fact (a speed run has no protocol) are left out of that comparison."""
    out = []
    for fact, read in COMPARED.items():
        groups: dict[str, list[str]] = {}
        for run in runs:
            value = read(run)
            if value is not None:
                groups.setdefault(str(value), []).append(f"{run['kind']} {run['id']}")
        if len(groups) > 1:
            sides = "; ".join(f"{value}: {', '.join(names)}" for value, names in groups.items())
            out.append(f"Pinned runs disagree on {fact} ({sides}): their numbers are not comparable; pin runs that "
                       "agree on the Experiments page.")
    return out


def pinned(ctx: Context) -> list[str]:
    """Ids of the runs the Report is built from for ``ctx``'s model: those pinned, or (nothing pinned or unpinned
    yet) the demo's."""
    pins = ctx.store.pins(ctx.model_id)
    return [rid for rid, on in pins.items() if on] if pins else list(_demo_runs(ctx).values())


def set_pinned(ctx: Context, run_id: str, on: bool = True) -> None:
    """Pin (``on``) or unpin run ``run_id`` for the Report; the first change for a model keeps the demo's runs
    pinned beside it (the default it started from)."""
    if not ctx.store.pins(ctx.model_id):
        for rid in _demo_runs(ctx).values():
            ctx.store.set_pin(rid, True)
    ctx.store.set_pin(run_id, on)


def results_version(ctx: Context) -> tuple:
    """A fingerprint of the stored results of ``ctx``'s model: it changes whenever one of its runs is
    added, updated or deleted, or pinned or unpinned (a page keeps a built report while it stays the same)."""
    runs = ctx.store.runs(model=ctx.model_id)
    return (str(ctx.store.path), ctx.model_id, ctx.dataset, len(runs), float(runs["updated"].max()) if len(runs) else 0.0,
            tuple(sorted(ctx.store.pins(ctx.model_id).items())))  # pinning or unpinning changes the report


__all__ = ["Report", "ReportOptions", "Section", "SECTIONS", "SECTION_PAGES", "build_report", "disagreements",
           "pinned", "results_version", "set_pinned"]
