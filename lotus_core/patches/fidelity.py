"""Do the scorers find the patches the model needs, and do they agree?

Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018): patches are removed
(filled with the dataset mean pixel) in score order, most important first, and top-1
accuracy is recorded at each fraction removed; the insertion curve starts from the all-mean
image and puts patches back in the same order. A faithful scorer makes accuracy fall fast
on deletion (low deletion AUC) and rise fast on insertion (high insertion AUC). Areas are
trapezoids over the fraction of patches in [0, 1], so they are accuracies in [0, 1].

Agreement between two scorers, averaged over images: the Spearman rank correlation of their
patch scores (images where either scorer is constant are left out), the overlap of their
top-k patches (|top_a ∩ top_b| / k, chance level k / P) and the overlap of the patches each
would drop at the drop ratio (chance level dropped / P).

Stored as the experiment "fidelity": one point per scorer (its curves) and its scores as a
blob, so a page or CLI repeat is served from the store and an interrupted run resumes.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from ..context import Context
from ..data.images import subset_indices
from ..core.errors import LotusError
from ..training.evaluate import predict
from ..results.executors import get_executor, track
from ..results.runs import Run, run_experiment
from ..results.registry import ExperimentSpec, Headline, register_experiment
from . import SCORERS, PatchScoring, ScoreOptions, get_scorer, patch_grid, score_images
from .select import drop_count, fill_value, mask_pixels, patch_ranks


@dataclass(frozen=True)
class FidelityConfig:
    """Deletion/insertion curves and agreement of patch scorers on a fixed test subset."""

    scorers: tuple[str, ...] = tuple(SCORERS)  # scorers compared
    limit: int = 100  # test images (fixed seeded subset)
    steps: int = 10  # curve points: fractions 0, 1/steps, ..., 1 of the patches (rounded to whole patches)
    top_k: float = 0.2  # top-k overlap compares each scorer's top round(top_k * P) patches
    drop: float = 0.1  # dropped-set overlap at this drop ratio
    scoring: PatchScoring = PatchScoring()  # how the scorers read the model (block, head fusion, ...)
    seed: int = 0  # test subset and random scorer

    def options(self) -> ScoreOptions:
        return self.scoring.with_seed(self.seed)


@dataclass
class FidelityResult:
    """Tables of :func:`fidelity` (accuracies and AUCs are fractions in [0, 1])."""

    curves: pd.DataFrame  # scorer, mode (deletion | insertion), fraction, patches, accuracy
    auc: pd.DataFrame  # scorer, deletion_auc, insertion_auc
    agreement: pd.DataFrame  # scorer_a, scorer_b, spearman, topk_overlap, topk_chance, dropped_overlap, dropped_chance
    summary: dict = field(default_factory=dict)

    def agreement_in_words(self) -> pd.DataFrame:
        """The agreement table with plain column names, for people rather than code."""
        return self.agreement.rename(columns=AGREEMENT_WORDS)


AGREEMENT_WORDS = {
    "scorer_a": "scorer", "scorer_b": "compared with", "spearman": "rank agreement (-1 to 1)",
    "topk_overlap": "share of top patches in common", "topk_chance": "by chance",
    "dropped_overlap": "share of dropped patches in common", "dropped_chance": "by chance (dropped)",
}
"""Display names of the agreement columns (rank agreement is Spearman's rho, averaged over images)."""


def curve_counts(num_patches: int, steps: int) -> list[int]:
    """Whole numbers of patches at fractions 0, 1/steps, ..., 1 (round half up), without repeats."""
    if steps < 1:
        raise LotusError(f"curve steps must be at least 1, got {steps}")
    return sorted({math.floor(i * num_patches / steps + 0.5) for i in range(steps + 1)})


def curve_accuracy(ctx: Context, images: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor,
                   fill: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of the base model on ``images`` with only the ``keep`` ``(N, P)`` patches shown."""
    grid = patch_grid(ctx.model, ctx.data_config["input_size"][1:])
    preds = predict(ctx.model, images, ctx.data_config, batch_size=batch_size,
                    transform=lambda x, start: mask_pixels(x, keep[start: start + batch_size], grid, fill))
    return float((preds == labels).float().mean()) if len(labels) else 0.0


def deletion_insertion(ctx: Context, images: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                       fill: torch.Tensor, steps: int = 10) -> pd.DataFrame:
    """Deletion and insertion curves of one scorer's ``scores`` ``(N, P)``: mode, fraction, patches, accuracy."""
    ranks = patch_ranks(scores)
    p = scores.shape[1]
    rows = []
    for count in curve_counts(p, steps):
        for mode, keep in (("deletion", ranks >= count), ("insertion", ranks < count)):
            rows.append({"mode": mode, "fraction": count / p, "patches": count,
                         "accuracy": curve_accuracy(ctx, images, labels, keep, fill)})
    return pd.DataFrame(rows)


def auc(curve: pd.DataFrame) -> float:
    """Trapezoid area under accuracy over the fraction of patches in [0, 1]."""
    part = curve.sort_values("fraction")
    return float(np.trapezoid(part["accuracy"], part["fraction"]))


def agreement(scores: dict[str, torch.Tensor], top_k: float = 0.2, drop: float = 0.1) -> pd.DataFrame:
    """Pairwise agreement of scorers' ``(N, P)`` scores, averaged over images (see the module docstring)."""
    rows = []
    for a, b in itertools.combinations(scores, 2):
        sa, sb = scores[a].double().numpy(), scores[b].double().numpy()
        p = sa.shape[1]
        rho = [spearmanr(x, y).statistic if np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan for x, y in zip(sa, sb)]
        k = max(1, math.floor(top_k * p + 0.5))
        ra, rb = patch_ranks(scores[a]), patch_ranks(scores[b])
        top = ((ra < k) & (rb < k)).sum(dim=1).double() / k
        n_drop = drop_count(p, drop)
        dropped = (((ra >= p - n_drop) & (rb >= p - n_drop)).sum(dim=1).double() / n_drop) if n_drop else None
        rows.append({"scorer_a": a, "scorer_b": b,
                     "spearman": float(np.nanmean(rho)) if not np.all(np.isnan(rho)) else float("nan"),
                     "topk_overlap": float(top.mean()), "topk_chance": k / p,
                     "dropped_overlap": float(dropped.mean()) if dropped is not None else float("nan"),
                     "dropped_chance": n_drop / p})
    return pd.DataFrame(rows, columns=["scorer_a", "scorer_b", "spearman", "topk_overlap", "topk_chance",
                                       "dropped_overlap", "dropped_chance"])


def _tensor_blob(t: torch.Tensor) -> bytes:
    from safetensors.torch import save

    return save({"scores": t.contiguous()})


def _blob_tensor(data: bytes) -> torch.Tensor:
    from safetensors.torch import load

    return load(data)["scores"]


def check_config(cfg: FidelityConfig) -> None:
    if not cfg.scorers:
        raise LotusError("no scorers given; choose from " + ", ".join(SCORERS))
    for name in cfg.scorers:
        get_scorer(name)
    if not 0.0 < cfg.top_k <= 1.0:
        raise LotusError(f"top-k fraction {cfg.top_k} is outside (0, 1]")
    cfg.options().check()


@dataclass
class ScorerState:
    """Executor state of a fidelity run: the base model's context and the fixed images."""

    ctx: Context
    cfg: FidelityConfig
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,)
    ids: torch.Tensor  # (N,) dataset indices (the random scorer's per-image seeds)
    fill: torch.Tensor  # the mean pixel that replaces removed patches


def scorer_unit(state: ScorerState, unit: tuple[str, torch.Tensor | None]) -> dict:
    """Executor unit: one scorer's ``(N, P)`` scores (unless already stored) and its curves."""
    name, scores = unit
    if scores is None:
        scores = score_images(state.ctx.model, state.images, state.ctx.data_config, name, state.cfg.options(),
                              state.fill, ids=state.ids)
    curve = deletion_insertion(state.ctx, state.images, state.labels, scores, state.fill, state.cfg.steps)
    return {"scores": scores, "point": {"scorer": name, "curve": curve.to_dict(orient="records"),
                                        "deletion_auc": auc(curve[curve["mode"] == "deletion"]),
                                        "insertion_auc": auc(curve[curve["mode"] == "insertion"])}}


def run_fidelity(ctx: Context, cfg: FidelityConfig, run: Run) -> dict:
    """Experiment: scores, curves and agreement of ``cfg.scorers`` on ``cfg.limit`` test images.

    Each scorer is a unit on ``ctx.executor``; its scores (a blob) and curves (a point) are
    stored as they arrive.
    """
    check_config(cfg)
    idx = subset_indices(len(ctx.test), cfg.limit, cfg.seed)
    images, labels = ctx.test.images[idx], ctx.test.labels[idx]
    fill = fill_value(ctx.train, ctx.data_config)
    todo = {}
    for name in cfg.scorers:
        blob = run.blob(f"scores-{name}.safetensors")
        if blob is None or not run.has(f"scorer-{name}"):
            todo[f"scorer-{name}"] = (name, None if blob is None else _blob_tensor(blob))
    with get_executor(ctx.executor).pool(ScorerState, ctx, cfg, images, labels, idx, fill) as pool:
        batch = pool.map(scorer_unit, todo)
        for outcome in track(run, batch, pool.slots, len(cfg.scorers) - len(todo), len(cfg.scorers),
                             describe=lambda r: {"scorer": r["point"]["scorer"]}):
            name = outcome.result["point"]["scorer"]
            if run.blob(f"scores-{name}.safetensors") is None:
                run.blob(f"scores-{name}.safetensors", _tensor_blob(outcome.result["scores"]))
            run.point(outcome.key, outcome.result["point"])
    scores = {name: _blob_tensor(run.blob(f"scores-{name}.safetensors")) for name in cfg.scorers}
    points = [run.get(f"scorer-{name}") for name in cfg.scorers]
    return {"images": len(idx), "grid": list(patch_grid(ctx.model, ctx.data_config["input_size"][1:]).shape),
            "auc": [{"scorer": p["scorer"], "deletion_auc": p["deletion_auc"], "insertion_auc": p["insertion_auc"]}
                    for p in points],
            "agreement": agreement(scores, cfg.top_k, cfg.drop).to_dict(orient="records")}


def fidelity(ctx: Context, cfg: FidelityConfig = FidelityConfig(), on_progress=None,
             refresh: bool = False) -> FidelityResult:
    """Run (or read from the store) the fidelity experiment and return its tables."""
    summary = run_experiment(ctx, "fidelity", cfg, run_fidelity, on_progress=on_progress, refresh=refresh)
    points = ctx.store.points(summary["run_id"])
    curves = pd.concat([pd.DataFrame(points[f"scorer-{n}"]["curve"]).assign(scorer=n) for n in cfg.scorers],
                       ignore_index=True)[["scorer", "mode", "fraction", "patches", "accuracy"]]
    return FidelityResult(curves, pd.DataFrame(summary["auc"]), pd.DataFrame(summary["agreement"]), summary)


def fidelity_headline(s: dict) -> Headline:
    """Headline of a stored fidelity comparison: each scorer's deletion AUC."""
    return Headline(None, None, "deletion AUC " + ", ".join(f"{a['scorer']} {a['deletion_auc']:.3f}" for a in s["auc"]))


def fidelity_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against the fraction of patches deleted or inserted, one series per scorer and mode."""
    return [{"series": f"{p['scorer']} {c['mode']}", "axis": "fraction", "x": c["fraction"], "accuracy": c["accuracy"]}
            for p in points.values() if "curve" in p for c in p["curve"]]


register_experiment(ExperimentSpec("fidelity", FidelityConfig, run_fidelity, fidelity_headline, fidelity_curve,
                                   job=True))
