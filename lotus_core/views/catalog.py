"""What the Masks and Soup pages choose from and compare: stored ticket runs and their round
masks, one-shot masks computed on demand, and the tables drawn from them (fractions throughout)."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import pandas as pd

from ..core.config import from_stored
from ..context import Context
from ..pruning import PRUNERS, Mask, masker
from ..pruning.similarity import mask_similarity
from ..lottery.common import ordered, round_masks
from ..results.runs import run_experiment
from ..results.store import RunStatus
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment

TICKET_KINDS = ("lth", "issp")  # runs with a mask per round (the Masks page compares them)
COMPARED_KINDS = (*TICKET_KINDS, "rigl", "supermask")  # the Soup page's accuracy comparison: every way to a ticket
ONE_POINT_KINDS = ("rigl", "supermask")  # trained once to their sparsity: one point ("final"), no rounds
RUN_COLUMNS = ["id", "kind", "status", "config", "progress", "summary", "created"]


def ticket_runs(ctx: Context, kinds: Sequence[str] = TICKET_KINDS) -> pd.DataFrame:
    """Stored runs of ``kinds`` for this model, newest first (columns as ``Store.runs``)."""
    frames = [f for f in (ctx.store.runs(kind=k, model=ctx.model_id) for k in kinds) if len(f)]
    if not frames:
        return pd.DataFrame(columns=RUN_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values("created", ascending=False).reset_index(drop=True)


def run_label(row: Mapping) -> str:
    """A short human label of a stored LTH/ISSP/RigL/control run row."""
    cfg = row["config"]
    if row["kind"] == "issp":
        extra = f"N={cfg['denoisers']}, C={cfg['lookahead_steps']}, f={cfg['data_fraction']:g}, {cfg['merge']}"
    elif row["kind"] == "rigl":
        start = f"{cfg['n']}:{cfg['m']}" if cfg["m"] else f"from {cfg['init']}"
        extra = f"{start}, {cfg['steps']} steps, update every {cfg['update_every']}"
    elif row["kind"] == "supermask":
        return (f"SUPERMASK at {100 * (1 - cfg['density']):.0f}% ({cfg['init']} weights frozen, {cfg['steps']} steps) "
                f"[{row['status']}] {row['id'][:6]}")
    elif row["kind"] == "lth":
        extra = f"p={cfg['prune_fraction']:g}, {cfg['steps']} steps/round, rewind {cfg['rewind']}"
    else:
        return f"{cfg['control']} control of LTH round {cfg['round']} [{row['status']}] {row['id'][:6]}"
    return f"{row['kind'].upper()} to {100 * cfg['target']:.0f}% ({extra}) [{row['status']}] {row['id'][:6]}"


_ONE_SHOT: dict[str, Mask] = {}  # key -> mask (read only): the Masks page asks the same two on every rerun
_ONE_SHOT_MAX = 32  # masks kept (each about one bit per scoped weight, as bools: 0.6 MB for the default model)


def one_shot_mask(ctx: Context, method: str, sparsity: float, scope: str = "blocks", seed: int = 0,
                  protocol: str = "lotus") -> Mask:
    """A one-shot mask of the base model (wanda is calibrated on 128 training images, as in sweeps), computed once
    per process for the same model, data and settings (a working copy and a ranking each time cost 0.3 s).
    ``protocol`` "essential" masks a model whose head is not trained yet (the Essential Sparsity protocol
    fine-tunes after masking); the mask itself does not depend on it."""
    from ..pruning.sweep import PointEvaluator, SweepConfig
    from ..results.keys import config_id

    key = config_id(ctx.key(kind="one-shot-mask", method=method, sparsity=round(sparsity, 6), scope=scope, seed=seed,
                            protocol=protocol, model_object=id(ctx.model)))  # the loaded model itself, not its id
    if key not in _ONE_SHOT:
        if len(_ONE_SHOT) >= _ONE_SHOT_MAX:
            _ONE_SHOT.pop(next(iter(_ONE_SHOT)))  # the oldest
        config = SweepConfig(methods=(method,), scope=scope, seed=seed, protocol=protocol)
        _ONE_SHOT[key] = PointEvaluator(ctx, config).mask(method, sparsity)
    return _ONE_SHOT[key]


def mask_choices(ctx: Context, sparsity: float) -> dict[str, Callable[[], Mask]]:
    """Label -> loader of every mask a user can pick: one-shot masks at ``sparsity`` and stored rounds."""
    out: dict[str, Callable[[], Mask]] = {
        f"{m} at {100 * sparsity:.0f}%": (lambda m=m: one_shot_mask(ctx, m, sparsity))
        for m, pruner in PRUNERS.items() if pruner.fixed_sparsity() is None
    }
    out.update({f"{m} at {100 * p.fixed_sparsity():.0f}% (fixed)": (lambda m=m: one_shot_mask(ctx, m, 0.5))
                for m, p in PRUNERS.items() if p.fixed_sparsity() is not None})  # with the method's default options
    for _, row in ticket_runs(ctx).iterrows():
        for key, point in ctx.store.points(row["id"]).items():
            if key.startswith("round-") and point["round"] > 0:
                label = f"{row['kind'].upper()} {row['id'][:6]} round {point['round']} ({100 * point['sparsity']:.1f}%)"
                out[label] = lambda rid=row["id"], r=point["round"]: ordered(round_masks(ctx.store, rid)[r], ctx.model)
    return out


def stored_table(ctx: Context, kind: str, compute: Callable[[], pd.DataFrame], **key) -> pd.DataFrame:
    """The table ``compute()`` returns, computed once per (model, dataset, ``kind``, ``key``) and read from
    the results store afterwards (stored as the result ``kind`` with the table's rows as its summary)."""
    summary = run_experiment(ctx, kind, key, lambda *_: {"rows": compute().to_dict(orient="records")})
    return pd.DataFrame(summary["rows"])


def omp_vs_tickets(ctx: Context, run_id: str) -> pd.DataFrame:
    """For each finished round of a stored LTH/ISSP run: OMP at exactly that round's pruned count
    against the round's mask, overall (layer "all") and per layer. Stored as the result
    "omp-vs-ticket" of the run's finished rounds, so it is computed once per round set.

    Columns: round, sparsity, layer and the keys of :func:`~lotus_core.pruning.similarity.mask_similarity`.
    """
    def compute() -> pd.DataFrame:
        run = ctx.store.get_run(run_id)
        omp = masker(ctx.model, "omp", run["config"].get("scope", "blocks"))  # ranks once for all rounds
        rows = []
        for r, mask in round_masks(ctx.store, run_id).items():
            sim = mask_similarity(omp(mask.num_pruned() / mask.numel()), ordered(mask, ctx.model))
            overall = {k: v for k, v in sim.items() if k != "per_layer"}
            rows += [{"round": r, "sparsity": mask.sparsity, "layer": layer, **values}
                     for layer, values in {"all": overall, **sim["per_layer"]}.items()]
        return pd.DataFrame(rows)

    return stored_table(ctx, "omp-vs-ticket", compute, **omp_vs_tickets_key(ctx, run_id))


def omp_vs_tickets_key(ctx: Context, run_id: str) -> dict:
    """The key of :func:`omp_vs_tickets` for a run: the run and its finished rounds."""
    return {"run": run_id, "rounds": sorted(p["round"] for k, p in ctx.store.points(run_id).items()
                                            if k.startswith("round-"))}


def gap_by_layer(table: pd.DataFrame, measure: str = "cosine") -> pd.DataFrame:
    """Per-layer ``measure`` minus its chance level (fractions): layers x rounds, from :func:`omp_vs_tickets`."""
    part = table[table["layer"] != "all"].assign(gap=lambda t: t[measure] - t[f"chance_{measure}"])
    order = list(dict.fromkeys(part["layer"]))
    return part.pivot(index="layer", columns="round", values="gap").reindex(order)


def omp_vs_one_shot(ctx: Context, sparsities: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
                    others: Sequence[str] = ("omp-layerwise", "wanda", "random")) -> pd.DataFrame:
    """OMP against other one-shot criteria at each sparsity (needs no stored run; stored as the
    result "omp-vs-one-shot"). Columns: other, sparsity and the keys of mask_similarity."""
    def compute() -> pd.DataFrame:
        rows = []
        for s in sparsities:
            omp = one_shot_mask(ctx, "omp", s)
            for method in others:
                sim = mask_similarity(omp, one_shot_mask(ctx, method, s))
                rows.append({"other": method, "sparsity": s, **{k: v for k, v in sim.items() if k != "per_layer"}})
        return pd.DataFrame(rows)

    return stored_table(ctx, "omp-vs-one-shot", compute, sparsities=list(sparsities), others=list(others))


def omp_finetune_config(ctx: Context, lth_run_id: str):
    """The sweep that fine-tunes OMP masks at an LTH run's round sparsities with one round's
    steps and learning rate (batch size 128 and the sweep's seed): the Essential Sparsity
    paper's comparison of OMP + fine-tune with lottery tickets, as a :class:`SweepConfig`."""
    from ..pruning.sweep import SweepConfig

    cfg = ctx.store.get_run(lth_run_id)["config"]
    levels = [p["sparsity"] for k, p in ctx.store.points(lth_run_id).items() if k.startswith("round-") and p["round"]]
    return SweepConfig(methods=("omp",), sparsities=tuple(round(s, 6) for s in levels), limit=cfg["limit"],
                       scope=cfg["scope"], finetune_steps=cfg["steps"], finetune_lr=cfg["lr"])


def rigl_equal_steps_config(ctx: Context, lth_run_id: str):
    """RigL to an LTH run's final sparsity with that run's whole training budget (every round's steps: the
    comparison at equal training steps), its learning rate, batch size, scope, seed and test subset, starting
    from the OMP mask of the pre-trained weights; as a :class:`~lotus_core.lottery.rigl.RigLConfig`."""
    from ..lottery.rigl import RigLConfig

    run = ctx.store.get_run(lth_run_id)
    cfg, summary = run["config"], run["summary"]
    return RigLConfig(target=round(summary["final_sparsity"], 6), init="omp", steps=summary["train_steps"],
                      lr=cfg["lr"], batch_size=cfg["batch_size"], scope=cfg["scope"], seed=cfg["seed"],
                      limit=cfg["limit"])


ONE_SHOT_GRID = tuple(round(0.1 * i, 1) for i in range(1, 10))


def one_shot_config(limit: int, sparsities: Sequence[float] = ONE_SHOT_GRID):
    """The one-shot OMP and random curves every ticket is compared with (:func:`accuracy_comparison`, the Soup
    page), as a :class:`~lotus_core.pruning.sweep.SweepConfig` (the demo stores it)."""
    from ..pruning.sweep import SweepConfig

    return SweepConfig(methods=("omp", "random"), sparsities=tuple(sparsities), limit=limit)


def accuracy_comparison(ctx: Context, run_ids: Sequence[str], limit: int = 1000,
                        sparsities: Sequence[float] = ONE_SHOT_GRID) -> pd.DataFrame:
    """Accuracy against sparsity: one-shot OMP and random (stored sweep points, no fine-tune) and,
    for each given run, its rounds (RigL: its one trained ticket); for LTH runs also their stored controls and
    OMP + fine-tune at their sparsities (when that sweep was run, see :func:`omp_finetune_config`).

    Columns: series, sparsity, accuracy, ci_low, ci_high (fractions). ISSP rounds are the masked
    soups before the final fine-tune; its fine-tuned ticket is a separate one-point series.
    """
    from ..results.runs import stored_summary
    from ..pruning.sweep import run_sweep, sweep_result

    cols = ["sparsity", "accuracy", "ci_low", "ci_high"]

    def frame_rows(frame: pd.DataFrame, series: str | None = None) -> list[dict]:
        return [{"series": series or r["method"], **{c: r[c] for c in cols}} for _, r in frame.iterrows()]

    rows = frame_rows(run_sweep(ctx, one_shot_config(limit, sparsities)).frame)
    runs = ticket_runs(ctx, (*COMPARED_KINDS, "lth-control")).set_index("id")
    for rid in run_ids:
        kind, tag = runs.loc[rid, "kind"], rid[:6]
        fraction = f"f={runs.loc[rid, 'config'].get('data_fraction', 0):g}"  # ISSP's data fraction
        for key, p in ctx.store.points(rid).items():
            if key.startswith("round-") and p["sparsity"] > 0:
                series = f"LTH {tag}" if kind == "lth" else f"ISSP {tag} {fraction} before fine-tune"
                rows.append({"series": series, **{c: p[c] for c in cols}})
            elif key == "final":
                series = {"rigl": f"RigL {tag} ({p['steps']} steps)",
                          "supermask": f"supermask {tag} (a mask alone, {p['steps']} steps)"}.get(
                    kind, f"ISSP {tag} {fraction} fine-tuned")
                rows.append({"series": series, **{c: p[c] for c in cols}})
        if kind != "lth":
            continue
        for _, c in runs[runs["kind"] == "lth-control"].iterrows():
            if c["status"] == RunStatus.DONE and _controls_run(ctx, c["config"], rid):
                rows.append({"series": f"LTH {tag} {c['config']['control']} control", **{k: c["summary"][k] for k in cols}})
        sweep_cfg = omp_finetune_config(ctx, rid)
        summary = stored_summary(ctx, "sweep", sweep_cfg) if sweep_cfg.sparsities else None
        if summary is not None:
            steps = sweep_cfg.finetune_steps
            rows += frame_rows(sweep_result(ctx, summary, sweep_cfg).frame, f"OMP + {steps} fine-tune steps ({tag})")
    return pd.DataFrame(rows, columns=["series", *cols])


def run_costs(ctx: Context, run_ids: Sequence[str]) -> pd.DataFrame:
    """What each finished LTH/ISSP/RigL run cost and reached. Columns: run, kind, data fraction (ISSP),
    rounds, final sparsity, final accuracy (fractions), training steps, training time (s)."""
    runs = ticket_runs(ctx, COMPARED_KINDS).set_index("id")
    rows = []
    for rid in run_ids:
        row, summary = runs.loc[rid], runs.loc[rid, "summary"] or {}
        rigl = row["kind"] in ONE_POINT_KINDS  # trained once: no rounds
        rows.append({"run": run_label(row.to_dict() | {"id": rid}), "kind": row["kind"],
                     "data fraction": row["config"].get("data_fraction"), "rounds": summary.get("rounds"),
                     "final sparsity": summary.get("sparsity" if rigl else "final_sparsity"),
                     "final accuracy": summary.get("accuracy" if rigl else "final_accuracy"),
                     "training steps": summary.get("steps" if rigl else "train_steps"),
                     "training time (s)": summary.get("train_time_s")})
    return pd.DataFrame(rows)


COST_FORMATS = {"data fraction": ("{:.0%}", "— (ISSP only)"), "rounds": ("{:.0f}", "— (trained once)"),
                "final sparsity": ("{:.1%}", "— (not stored)"), "final accuracy": ("{:.2%}", "— (not stored)"),
                "training steps": ("{:,.0f}", "— (not recorded)"),
                "training time (s)": ("{:,.0f}", "— (not recorded: run stored before timing)")}
"""How :func:`cost_table` writes each column of :func:`run_costs`: the number's format, and the cell of a run
without that number (with the reason) in place of a blank "None"."""


def cost_table(costs: pd.DataFrame) -> pd.DataFrame:
    """:func:`run_costs` as text cells for display: numbers formatted (fractions as percent), a missing number
    as "—" with why it is missing (an LTH run has no data fraction, a RigL run no rounds); a column no run has
    is left out."""
    out = costs.dropna(axis=1, how="all")  # a column no shown run has (data fraction without ISSP runs)
    for name, (fmt, missing) in COST_FORMATS.items():
        if name in out:
            out[name] = [missing if v is None or pd.isna(v) else fmt.format(v) for v in out[name]]
    return out


TRACE_COLUMNS = ["step", "round", "loss"]


def training_trace(ctx: Context, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How an LTH or ISSP run trained: its per-step training loss (:data:`TRACE_COLUMNS`, ``step`` counted
    over the whole run, ``round`` the round it belongs to; ISSP: its final fine-tune, as round "final") and
    the accuracy after each round (columns round, step (the step it ended on), sparsity, accuracy). Runs stored
    before losses were recorded have an empty loss table."""
    points = ctx.store.points(run_id)
    keys = sorted((k for k in points if k.startswith("round-")), key=lambda k: int(k.split("-")[1]))
    keys += ["final"] if "final" in points else []
    losses, rounds, step = [], [], 0
    for key in keys:
        p, name = points[key], key.split("-")[1] if key != "final" else "final"
        trace = p.get("losses") or []
        losses += [{"step": step + i + 1, "round": name, "loss": x} for i, x in enumerate(trace)]
        step += len(trace) or int(p.get("steps") or 0)
        rounds.append({"round": name, "step": step, "sparsity": p["sparsity"], "accuracy": p["accuracy"]})
    return pd.DataFrame(losses, columns=TRACE_COLUMNS), pd.DataFrame(rounds, columns=["round", "step", "sparsity",
                                                                                         "accuracy"])


def _controls_run(ctx: Context, control_config: dict, lth_run_id: str) -> bool:
    """Whether a stored control's config belongs to the LTH run ``lth_run_id``."""
    from ..lottery.lth import LTHConfig
    from ..results.runs import run_id_for

    return run_id_for(ctx, "lth", from_stored(LTHConfig, control_config["lth"])) == lth_run_id


def omp_vs_ticket_headline(s: dict) -> Headline:
    """Headline of a stored OMP-vs-ticket table: the last round, all layers."""
    last = [r for r in s["rows"] if r.get("layer", "all") == "all"][-1]  # the last round, all layers
    return Headline(None, last["sparsity"], f"OMP vs ticket at {pct(last['sparsity'])}: cosine {pct(last['cosine'])} "
                    f"(chance {pct(last['chance_cosine'])})")


def omp_vs_one_shot_headline(s: dict) -> Headline:
    """Headline of a stored OMP-vs-one-shot table at its middle sparsity."""
    levels = sorted({r["sparsity"] for r in s["rows"]})
    middle = levels[len(levels) // 2]
    return Headline(None, middle, f"OMP vs one-shot masks at {pct(middle)}: " + ", ".join(
        f"{r['other']} cosine {pct(r['cosine'])} (chance {pct(r['chance_cosine'])})"
        for r in s["rows"] if r["sparsity"] == middle))


register_experiment(ExperimentSpec("omp-vs-ticket", headline=omp_vs_ticket_headline))  # omp_vs_tickets stores it
register_experiment(ExperimentSpec("omp-vs-one-shot", headline=omp_vs_one_shot_headline))  # omp_vs_one_shot stores it


def instability_table(ctx: Context) -> pd.DataFrame:
    """The error barrier of every stored instability point for this model: columns run, series, k, barrier,
    sparsity, tolerance (fractions; ``series`` labels the run by its sparsity and budget)."""
    rows = []
    for _, r in ctx.store.runs(kind="instability", model=ctx.model_id).iterrows():
        cfg = r["config"]
        series = f"sparsity {100 * cfg['sparsity']:.0f}%, {cfg['steps']} steps [{r['id'][:6]}]"
        for p in ctx.store.points(r["id"]).values():
            rows.append({"run": r["id"], "series": series, "k": p["k"], "barrier": p["barrier"],
                         "sparsity": cfg["sparsity"], "tolerance": cfg["tolerance"]})
    return pd.DataFrame(rows, columns=["run", "series", "k", "barrier", "sparsity", "tolerance"])


def stable_rewind_points(ctx: Context) -> list[int]:
    """The smallest stable k of every finished instability analysis of this model (distinct, ascending)."""
    runs = ctx.store.runs(kind="instability", model=ctx.model_id)
    return sorted({int(r["summary"]["stable_k"]) for _, r in runs.iterrows()
                   if r["status"] == "done" and r["summary"] and r["summary"].get("stable_k") is not None})
