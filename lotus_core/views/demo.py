"""The complete demo: every result the pages and the Report draw on for a model, computed once.

:func:`demo_plan` lists the experiments with the settings the pages use by default, all measured
on the same ``limit`` test images (the sidebar's one protocol): the dense baseline, the canonical
refined OMP sweep (the model's essential sparsity), the layer sensitivity grid, an LTH run with
both of its controls and OMP fine-tuned at its sparsities, ISSP at three data fractions, the
patch-scorer comparison, the Speed page's first view, training on data lottery tickets, and what the
Soup and Masks pages compute on a first visit (one-shot OMP and random curves, OMP against the
ticket's masks). :func:`prepare_demo` runs the plan
in order; every step is a stored, resumable experiment, so an interrupted run resumes and a
finished step is never recomputed. ``python -m lotus_core prepare-demo`` is its CLI, and the
result for the embedded default model ships as ``data/demo/lotus-demo.db`` (``make run`` starts
from a copy of it), so a fresh machine opens every page and the Report filled in.
"""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from ..context import Context
from ..core.paths import DEMO_DB, store_path
from ..training.evaluate import DEFAULT_LIMIT



@dataclass(frozen=True)
class DemoStep:
    """One experiment of the demo."""

    label: str  # what it is, in words
    kind: str  # the stored experiment kind
    config: Callable[[Context], Any]  # its config (may read earlier steps' stored results)
    run: Callable[[Context, Any], Any]  # computes it, or serves it from the store


def _lth_config(limit: int):
    from ..lottery.lth import LTHConfig

    return LTHConfig(target=0.8, prune_fraction=0.2, steps=100, rewind="pretrained", limit=limit)  # the Soup page's


def _run(kind: str) -> Callable[[Context, Any], Any]:
    def run(ctx: Context, cfg: Any) -> Any:
        from ..results.runs import run_experiment

        return run_experiment(ctx, kind, cfg)  # the kind's registered experiment
    return run


def demo_plan(limit: int = DEFAULT_LIMIT) -> list[DemoStep]:
    """The demo's experiments, in the order they run (later ones read earlier ones)."""
    from ..lottery.controls import CONTROLS, ControlConfig
    from ..lottery.issp import ISSPConfig
    from ..patches import SCORERS
    from ..patches.fidelity import FidelityConfig, fidelity
    from ..patches.ticket_training import LotteryTrainConfig
    from ..pruning.sensitivity import SensitivityConfig, run_sensitivity
    from ..pruning.sweep import SweepConfig, run_sweep
    from ..results.runs import run_id_for
    from ..speed.run import first_view
    from .catalog import omp_finetune_config, omp_vs_tickets, omp_vs_tickets_key, one_shot_config

    lth = _lth_config(limit)

    def last_round(ctx: Context) -> int:
        return int(ctx.store.get_run(run_id_for(ctx, "lth", lth))["summary"]["rounds"])

    steps = [
        DemoStep("dense accuracy", "evaluate", lambda ctx: limit, lambda ctx, n: ctx.dense_accuracy(limit=n)),
        DemoStep("essential sparsity: refined OMP sweep", "sweep",
                 lambda ctx: SweepConfig(methods=("omp",), limit=limit, refine=True), run_sweep),
        DemoStep("layer sensitivity", "sensitivity", lambda ctx: SensitivityConfig(limit=limit), run_sensitivity),
        DemoStep("lottery ticket (LTH to 80%)", "lth", lambda ctx: lth, _run("lth")),
    ]
    steps += [DemoStep(f"LTH {kind} control", "lth-control", lambda ctx, k=kind: ControlConfig(lth, last_round(ctx), k),
                       _run("lth-control")) for kind in CONTROLS]
    steps.append(DemoStep("OMP fine-tuned at the ticket's sparsities", "sweep",
                          lambda ctx: omp_finetune_config(ctx, run_id_for(ctx, "lth", lth)), run_sweep))
    steps += [DemoStep(f"Instant Soup at data fraction {f:g}", "issp",
                       lambda ctx, f=f: ISSPConfig(target=0.8, denoisers=5, lookahead_steps=50, data_fraction=f,
                                                   merge="union", finetune_steps=100, limit=limit), _run("issp"))
              for f in (0.1, 0.3, 1.0)]
    steps.append(DemoStep("patch scorers compared", "fidelity",
                          lambda ctx: FidelityConfig(scorers=tuple(SCORERS), limit=100), fidelity))
    steps.append(DemoStep("speed of pruned models (the Speed page's first view, the Report's 'Does it run faster?')",
                          "speed", lambda ctx: first_view(limit), _run("speed")))
    steps.append(DemoStep("training on data lottery tickets", "lottery-train",
                          lambda ctx: LotteryTrainConfig(scorer=next(iter(SCORERS)), limit=limit), _run("lottery-train")))
    steps.append(DemoStep("one-shot OMP and random curves (the Soup page's comparison)", "sweep",
                          lambda ctx: one_shot_config(limit), run_sweep))
    steps.append(DemoStep("OMP against the ticket's masks (the Masks page)", "omp-vs-ticket",
                          lambda ctx: omp_vs_tickets_key(ctx, run_id_for(ctx, "lth", lth)),
                          lambda ctx, key: omp_vs_tickets(ctx, key["run"])))
    return steps


def demo_runs(ctx: Context, limit: int = DEFAULT_LIMIT) -> dict[str, str]:
    """Label -> id of the stored run serving each demo step (computed here or elsewhere: labelled), for the steps
    stored; reads the store only. The Report's runs by default (views.report.pinned)."""
    from ..results.runs import resolve

    out: dict[str, str] = {}
    for step in demo_plan(limit):
        try:
            cfg = step.config(ctx)
        except (TypeError, KeyError):  # an earlier result it reads is missing
            continue
        run = resolve(ctx, step.kind, ctx.dense_params(cfg) if step.kind == "evaluate" else cfg)
        if run is not None:
            out[step.label] = run["id"]
    return out


def missing_steps(ctx: Context, limit: int = DEFAULT_LIMIT) -> list[str]:
    """Labels of the demo steps whose result is not stored yet (here or elsewhere: :func:`demo_runs`). Reads the
    store only: a step whose config needs an earlier, missing result (the controls of a missing ticket) counts
    as missing."""
    found = demo_runs(ctx, limit)
    return [step.label for step in demo_plan(limit) if step.label not in found]


def prepare_demo(ctx: Context, limit: int = DEFAULT_LIMIT,
                 on_progress: Callable[[dict], None] | None = None) -> dict:
    """Run every demo step (finished ones are served from the store) and return what each took.

    ``on_progress`` gets ``{"step", "of", "label", "elapsed_s", "eta_s"}`` before each step; the
    ETA is measured: the mean time of the steps computed so far times the steps left (None
    until one step was computed).
    """
    plan, rows, t_start, computed = demo_plan(limit), [], time.perf_counter(), []
    for i, step in enumerate(plan):
        if on_progress is not None:
            left = len(plan) - i
            eta = sum(computed) / len(computed) * left if computed else None
            on_progress({"step": i + 1, "of": len(plan), "label": step.label,
                         "elapsed_s": round(time.perf_counter() - t_start, 1), "eta_s": None if eta is None else round(eta)})
        before = len(ctx.store.runs())
        t0 = time.perf_counter()
        step.run(ctx, step.config(ctx))
        took = time.perf_counter() - t0
        new = len(ctx.store.runs()) > before
        if new:
            computed.append(took)
        rows.append({"step": step.label, "kind": step.kind, "seconds": round(took, 2), "computed": new})
    return {"limit": limit, "steps": rows, "seconds": round(time.perf_counter() - t_start, 1),
            "computed": sum(r["computed"] for r in rows)}


RESUME_ONLY_BLOBS = {  # kind -> name prefixes of the blobs a finished run never reads again (weights kept to resume)
    "issp": ("soup-round-",),  # the soup after each round
    "lottery-train": ("init.", "full-epoch-", "lottery-epoch-"),  # both arms' start and weights after each epoch
}


def compact_copy(source: Path, out: Path) -> dict:
    """A compact copy of the store at ``source`` written to ``out`` (what ships as :data:`DEMO_DB`): the
    blobs a finished run only kept to resume (:data:`RESUME_ONLY_BLOBS`: weights of ISSP rounds and of lottery-training
    epochs) are left out,
    and the file is vacuumed into one self-contained database (no WAL). Returns sizes in bytes."""
    import sqlite3

    out = Path(out)
    if out.exists():
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(source)
    try:
        con.execute("VACUUM INTO ?", (str(out),))
    finally:
        con.close()
    con = sqlite3.connect(out)
    try:
        for kind, prefixes in RESUME_ONLY_BLOBS.items():
            for prefix in prefixes:
                con.execute("DELETE FROM blobs WHERE name LIKE ? AND run_id IN (SELECT id FROM runs WHERE kind = ? "
                            "AND status = 'done')", (prefix + "%", kind))
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return {"source_bytes": Path(source).stat().st_size, "bytes": out.stat().st_size}


def seed_store(path: str | Path | None = None, demo: Path = DEMO_DB) -> bool:
    """Start the results store at ``path`` (default ``$LOTUS_DB`` or data/lotus.db) from a copy of the shipped
    demo store when there is no store there yet (``make run``, the container); never touches an existing one.
    True when it copied."""
    import shutil


    target = store_path(path)
    if target.exists() or not demo.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo, target)
    return True
