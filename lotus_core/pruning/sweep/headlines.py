"""One-line headlines and the Experiments curve of stored sweeps and their points (results/registry.py)."""
from __future__ import annotations

from ...results.registry import Headline, pct


def prune_eval_headline(s: dict) -> Headline:
    """Headline of one stored sweep point."""
    return Headline(s["accuracy"], s["sparsity_reached"],
                    f"{s['method']} at {pct(s['sparsity_reached'])}: {pct(s['accuracy'])}")


def prune_decide_headline(s: dict) -> Headline:
    """Headline of one early decision of a sweep point (no accuracy: only whether it is within tolerance)."""
    verdict = "still open (a scout)" if s.get("open") else \
        "within tolerance" if s["correct"] >= s["required"] else "below tolerance"
    return Headline(None, s["sparsity_reached"], f"{s['method']} at {pct(s['sparsity_reached'])}: {verdict} "
                    f"after {s['seen']} of {s['n']} images")


def prune_prefix_headline(s: dict) -> Headline:
    """Headline of a point's furthest early decision (its counts, reused by every tolerance)."""
    return Headline(None, s["sparsity_reached"], f"{s['method']} at {pct(s['sparsity_reached'])}: {s['correct']} "
                    f"of the first {s['seen']} of {s['n']} images right")


def sweep_headline(s: dict) -> Headline:
    """Headline of a stored sweep: dense accuracy and each method's essential sparsity."""
    ess = {m: e["essential_sparsity"] for m, e in s["essential"].items()}
    first = next(iter(ess.values()), None)
    return Headline(s["dense"]["accuracy"], first, f"dense {pct(s['dense']['accuracy'])}; essential sparsity "
                    + ", ".join(f"{m} {pct(v)}" for m, v in ess.items()))


def sweep_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against sparsity, one series per method, each starting at the dense model; points decided
    early (no accuracy, ``search="bisect"``/``"scout"``) are left out."""
    rows = [{"series": p["method"], "axis": "sparsity", "x": p["sparsity"], "accuracy": p["accuracy"]}
            for p in points.values() if "method" in p and p.get("accuracy") is not None]  # None: decided early
    if summary and rows:  # every method starts at the dense model
        rows += [{"series": m, "axis": "sparsity", "x": 0.0, "accuracy": summary["dense"]["accuracy"]}
                 for m in dict.fromkeys(r["series"] for r in rows)]
    return rows
