"""What the Masks and Soup pages choose from: stored ticket runs, their masks, and one-shot
masks computed on demand, plus the comparisons drawn from them."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from ..context import Context
from ..pruning import PRUNERS, Mask, prune
from ..similarity import mask_similarity
from .lth import round_masks


def ticket_runs(ctx: Context, kinds: tuple[str, ...] = ("lth", "issp")) -> pd.DataFrame:
    """Stored LTH/ISSP runs of this model: id, kind, status, config, progress, summary."""
    frames = [ctx.store.runs(kind=k, model=ctx.model_id) for k in kinds]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else \
        pd.DataFrame(columns=["id", "kind", "status", "config", "progress", "summary", "created"])
    return frame.sort_values("created", ascending=False).reset_index(drop=True)


def run_label(row) -> str:
    cfg = row["config"]
    extra = f"f={cfg.get('data_fraction')}, {cfg.get('merge')}" if row["kind"] == "issp" else \
        f"p={cfg.get('prune_fraction')}, {cfg.get('steps')} steps/round"
    return f"{row['kind'].upper()} to {100 * cfg.get('target', 0):.0f}% ({extra}) [{row['status']}] {row['id'][:6]}"


def one_shot_mask(ctx: Context, method: str, sparsity: float, seed: int = 0) -> Mask:
    """A one-shot mask of the base model (wanda is calibrated on 128 training images)."""
    from ..sweep import PointEvaluator, SweepConfig

    return PointEvaluator(ctx, SweepConfig(methods=(method,), seed=seed)).mask(method, sparsity)


def mask_choices(ctx: Context, sparsity: float) -> dict[str, Callable[[], Mask]]:
    """Label -> loader for every mask the user can pick: one-shot masks at ``sparsity`` and stored rounds."""
    out: dict[str, Callable[[], Mask]] = {
        f"{m} at {100 * sparsity:.0f}%": (lambda m=m: one_shot_mask(ctx, m, sparsity))
        for m in PRUNERS if not PRUNERS[m].fixed_sparsity
    }
    out["nm 2:4"] = lambda: one_shot_mask(ctx, "nm", 0.5)
    for _, row in ticket_runs(ctx).iterrows():
        for r, point in ctx.store.points(row["id"]).items():
            if r.startswith("round-") and point.get("round", 0) > 0:
                rnd = point["round"]
                out[f"{row['kind'].upper()} {row['id'][:6]} round {rnd} ({100 * point['sparsity']:.1f}%)"] = \
                    (lambda rid=row["id"], rnd=rnd: round_masks(ctx, rid)[rnd])
    return out


def omp_vs_tickets(ctx: Context, run_id: str) -> pd.DataFrame:
    """For each round of a stored LTH/ISSP run: OMP at the same sparsity against the ticket's mask."""
    rows = []
    for r, mask in round_masks(ctx, run_id).items():
        s = mask_similarity(one_shot_mask(ctx, "omp", round(mask.sparsity, 6)), mask)
        rows.append({"round": r, "sparsity": mask.sparsity, **{k: v for k, v in s.items() if k != "per_layer"}})
    return pd.DataFrame(rows)


def omp_vs_one_shot(ctx: Context, sparsities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)) -> pd.DataFrame:
    """OMP against the other one-shot criteria at each sparsity (needs no stored run)."""
    rows = []
    for s in sparsities:
        omp = one_shot_mask(ctx, "omp", s)
        for method in ("omp-layerwise", "wanda", "random"):
            sim = mask_similarity(omp, one_shot_mask(ctx, method, s))
            rows.append({"other": method, "sparsity": s, **{k: v for k, v in sim.items() if k != "per_layer"}})
    return pd.DataFrame(rows)


def accuracy_comparison(ctx: Context, run_ids: list[str], limit: int = 1000,
                        sparsities: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))) -> pd.DataFrame:
    """Accuracy against sparsity for OMP and random (one-shot, stored points) and the given ticket runs."""
    from ..sweep import SweepConfig, run_sweep

    sweep = run_sweep(ctx, SweepConfig(methods=("omp", "random"), sparsities=sparsities, limit=limit)).frame
    rows = [{"series": r.method, "sparsity": r.sparsity, "accuracy": r.accuracy} for r in sweep.itertuples()]
    runs = ticket_runs(ctx).set_index("id")
    for rid in run_ids:
        kind = runs.loc[rid, "kind"] if rid in runs.index else "run"
        for key, p in ctx.store.points(rid).items():
            if key.startswith("round-") and p["sparsity"] > 0:
                rows.append({"series": f"{kind.upper()} {rid[:6]}" + (" (before fine-tune)" if kind == "issp" else ""),
                             "sparsity": p["sparsity"], "accuracy": p["accuracy"]})
            elif key == "final":
                rows.append({"series": f"{kind.upper()} {rid[:6]} fine-tuned", "sparsity": p["sparsity"],
                             "accuracy": p["accuracy"]})
    return pd.DataFrame(rows)
