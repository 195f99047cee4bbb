"""LOTUS core: prune Vision Transformers on demand and measure what survives.

The library behind the dashboard and ``python -m lotus_core``; it never imports streamlit.
The names below are imported on first use (PEP 562), so ``import lotus_core`` (and a CLI
command that needs no model) does not pay for torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {  # name -> module that defines it
    "Context": ".core.context", "open_context": ".core.context", "ImageSet": ".data", "load_dataset": ".data",
    "LotusError": ".core.errors", "EvalResult": ".training.evaluate", "evaluate": ".training.evaluate",
    "load_model": ".models.loading", "Store": ".results.store", "config_id": ".results.store",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lotus_core' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
