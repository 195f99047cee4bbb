"""LOTUS core: prune Vision Transformers on demand and measure what survives.

The library behind the dashboard and ``python -m lotus_core``; it never imports streamlit.
"""
from .context import Context, open_context
from .data import ImageSet, load_dataset
from .errors import LotusError
from .evaluate import EvalResult, evaluate
from .models import load_model
from .store import Store, config_id

__all__ = ["Context", "open_context", "ImageSet", "load_dataset", "LotusError", "EvalResult", "evaluate",
           "load_model", "Store", "config_id"]
