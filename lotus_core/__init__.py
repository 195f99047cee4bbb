"""LOTUS core: prune Vision Transformers on demand and measure what survives.

The library behind the dashboard and ``python -m lotus_core``; it never imports streamlit.
"""
from .core.context import Context, open_context
from .data import ImageSet, load_dataset
from .core.errors import LotusError
from .training.evaluate import EvalResult, evaluate
from .models.loading import load_model
from .results.store import Store, config_id

__all__ = ["Context", "open_context", "ImageSet", "load_dataset", "LotusError", "EvalResult", "evaluate",
           "load_model", "Store", "config_id"]
