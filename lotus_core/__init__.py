"""LOTUS core: prune Vision Transformers on demand and measure what survives.

The library behind the dashboard and ``python -m lotus_core``; it never imports streamlit.
The names below are imported on first use (PEP 562), so ``import lotus_core`` (and a CLI
command that needs no model) does not pay for torch. Besides them, every experiment command of the
CLI is a function for notebooks (``lotus_core.sweep``, ``prune``, ``lth``, ``patches``, ...:
:mod:`lotus_core.api`), and ``lotus_core.essential_sparsity`` reads a curve's turning point.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {  # name -> module that defines it
    "Context": ".context", "open_context": ".context", "ImageSet": ".data.images", "load_dataset": ".data",
    "LotusError": ".core.errors", "EvalResult": ".training.evaluate", "evaluate": ".training.evaluate",
    "load_model": ".models.loading", "Store": ".results.store", "config_id": ".results.keys",
}
__all__ = list(_EXPORTS)


def _api_name(name: str) -> bool:
    """Whether ``name`` is a notebook function of :mod:`lotus_core.api` (one per experiment command; the
    COMMANDS registry is read without importing torch)."""
    from .commands import COMMANDS

    return name == "essential_sparsity" or name != "info" and name.replace("_", "-") in COMMANDS


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    if not name.startswith("_") and _api_name(name):
        api = importlib.import_module(".api", __name__)
        if hasattr(api, name):
            return getattr(api, name)
    raise AttributeError(f"module 'lotus_core' has no attribute {name!r}")
