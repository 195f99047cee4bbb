"""Pieces shared by LTH and ISSP: the compounding schedule, the IMP pruning step, stored masks.

Counting rule: as ``torch.nn.utils.prune`` applied round after round (its ``PruningContainer``
prunes ``round(amount * remaining)`` of the entries still unpruned), a round that prunes a
fraction p of what is left removes ``round(p * remaining)`` more weights. The last round is
clipped to ``round(target * total)``, the count every one-shot method prunes at ``target``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.errors import LotusError
from ..core.mask import Mask
from ..pruning.ranking import GlobalRanking, num_to_prune
from ..pruning.scope import scoped_parameters
from ..results.registry import Headline, pct
from ..results.store import Store


def prune_counts(total: int, target: float, fraction: float) -> list[int]:
    """Pruned counts after each round (of ``total`` scoped weights) when every round prunes
    ``fraction`` of the remaining ones, until ``target`` (fractions; see the module docstring)."""
    if not 0 < fraction < 1:
        raise LotusError(f"pruning fraction per round {fraction} is outside (0, 1); the default is 0.2")
    if not 0 < target < 1:
        raise LotusError(f"target sparsity {target} is outside (0, 1); give a fraction such as 0.8")
    goal, pruned, out = num_to_prune(target, total), 0, []
    if goal == 0:
        raise LotusError(f"target sparsity {target} prunes no weight of {total}; give a larger target")
    while pruned < goal:
        pruned = min(goal, pruned + max(1, round(fraction * (total - pruned))))
        out.append(pruned)
    return out


def prune_remaining(model: nn.Module, keep: Mask, num_pruned: int, scope: str = "blocks") -> Mask:
    """The IMP step: a global magnitude mask with exactly ``num_pruned`` weights pruned that
    prunes everything ``keep`` prunes; the rest are the smallest |w| of ``keep``'s survivors.

    Equals ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` applied on top
    of ``keep`` (tested). Already-pruned entries score -1, below every |w|, so they go first.
    """
    params = scoped_parameters(model, scope)
    if num_pruned < keep.num_pruned():
        raise LotusError(f"cannot prune {num_pruned} weights: the mask already prunes {keep.num_pruned()}")
    scores = {n: torch.where(keep[n].to(p.device), p.detach().abs().float(), torch.full(p.shape, -1.0, device=p.device))
              for n, p in params.items()}
    return GlobalRanking(scores).mask(num_pruned / keep.numel())


def regrow(model: nn.Module, keep: Mask, within: Mask, num_pruned: int, scope: str = "blocks") -> Mask:
    """``keep`` plus the largest-|w| entries of ``within`` that ``keep`` prunes, until exactly
    ``num_pruned`` are pruned (``keep`` must prune at least that many and lie inside ``within``)."""
    extra = keep.num_pruned() - num_pruned
    if extra < 0:
        raise LotusError(f"cannot regrow to {num_pruned} pruned weights: the mask prunes only {keep.num_pruned()}")
    if extra == 0:
        return Mask(dict(keep))
    params = scoped_parameters(model, scope)
    keep, within = keep.to(next(iter(params.values())).device), within.to(next(iter(params.values())).device)
    candidates = {n: within[n] & ~keep[n] for n in keep}
    scores = {n: torch.where(candidates[n], p.detach().abs().float(), torch.full(p.shape, -1.0, device=p.device))
              for n, p in params.items()}
    grown = GlobalRanking(scores).mask(1 - extra / keep.numel())  # keeps the `extra` highest scores
    return Mask({n: keep[n] | (grown[n] & candidates[n]) for n in keep})


def mask_blob(r: int) -> str:
    return f"mask-round-{r}.safetensors"


def ordered(mask: Mask, model: nn.Module) -> Mask:
    """``mask`` with its entries in ``model.named_parameters()`` order (a mask read back from
    safetensors comes in no fixed order, and seeded draws over its layers depend on the order)."""
    return Mask({n: mask[n] for n, _ in model.named_parameters() if n in mask})


def round_masks(store: Store, run_id: str) -> dict[int, Mask]:
    """The masks of the finished rounds of a stored LTH or ISSP run, by round (round 0, dense, has none)."""
    out = {}
    for name in store.blob_names(run_id):
        if name.startswith("mask-round-"):
            r = int(name[len("mask-round-"):].split(".")[0])
            if store.get_point(run_id, f"round-{r}") is not None:
                out[r] = Mask.from_bytes(store.get_blob(run_id, name))
    return dict(sorted(out.items()))


def state_bytes(model: nn.Module) -> bytes:
    """All weights of ``model`` as safetensors bytes (for blobs)."""
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})


def load_state_bytes(model: nn.Module, data: bytes) -> nn.Module:
    """Load safetensors bytes from :func:`state_bytes` into ``model`` (returned)."""
    from safetensors.torch import load

    model.load_state_dict(load(data))
    return model


def ticket_headline(s: dict) -> Headline:
    """Headline of a stored LTH or ISSP run: its last round (ISSP: after the final fine-tune)."""
    extra = f" ({pct(s['before_finetune_accuracy'])} before the final fine-tune)" if "before_finetune_accuracy" in s else ""
    return Headline(s["final_accuracy"], s["final_sparsity"],
                    f"{s['rounds']} rounds to {pct(s['final_sparsity'])}: {pct(s['final_accuracy'])}{extra}")


def ticket_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against sparsity of a ticket run's rounds (and ISSP's fine-tuned ticket)."""
    rows = [{"series": "rounds", "axis": "sparsity", "x": p["sparsity"], "accuracy": p["accuracy"]}
            for k, p in points.items() if k.startswith("round-")]
    if "final" in points:
        rows.append({"series": "fine-tuned", "axis": "sparsity", "x": points["final"]["sparsity"],
                     "accuracy": points["final"]["accuracy"]})
    return rows
