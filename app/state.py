"""The shared sidebar: model, dataset and the evaluation protocol (how many test images), held across
pages and in the URL (a reload or a shared link reopens the same view), and the cached Context.

The number of test images is one setting for every page, job, baseline and the Report, so no page
compares results measured on different subsets.

Models and datasets are cached with ``st.cache_resource`` (one copy per server); pages must
never modify ``ctx.model``: prune or train ``ctx.copy_model()``.
"""
from __future__ import annotations

import os

import streamlit as st

from lotus_core.core.context import Context, open_context
from lotus_core.data import DATASETS
from lotus_core.core.errors import LotusError
from lotus_core.training.evaluate import DEFAULT_LIMIT

MODEL_CHOICES = ["default", "vit_small_patch16_224.augreg_in21k_ft_in1k", "vit_small_patch16_224.dino",
                 "vit_tiny_patch16_224.augreg_in21k_ft_in1k"]
DATASET_CHOICES = [name for name in DATASETS if name != "imagefolder"]
LIMITS = [200, 500, 1000, 2000, 5000, 10000]  # test images per evaluation (a fixed seeded subset)
URL_KEYS = {"model": "model", "dataset": "dataset", "limit": "n"}  # session key -> query parameter


@st.cache_resource(show_spinner="Loading model and data...", max_entries=4)
def load_context(model: str, dataset: str, weights: str | None = None, db: str | None = None) -> Context:
    return open_context(model, dataset, weights=weights or None, db=db)


def _from_url(key: str, default):
    """The value of ``key`` in the URL when it is a valid one, else ``default``."""
    raw = st.query_params.get(URL_KEYS.get(key, ""), None)
    if raw is None:
        return default
    if isinstance(default, int):
        return int(raw) if raw.isdigit() and int(raw) in LIMITS else default
    return raw


def _persist(key: str, default) -> None:
    """Keep a widget's value across pages (Streamlit drops widget state of unrendered pages) and in the URL."""
    st.session_state.setdefault(f"_{key}", _from_url(key, default))
    st.session_state[key] = st.session_state[f"_{key}"]
    if key in URL_KEYS:
        st.query_params[URL_KEYS[key]] = str(st.session_state[key])


def _save(key: str) -> None:
    st.session_state[f"_{key}"] = st.session_state[key]
    if key in URL_KEYS:
        st.query_params[URL_KEYS[key]] = str(st.session_state[key])


def limit() -> int:
    """The number of test images every page evaluates on (the sidebar's setting)."""
    return int(st.session_state.get("_limit", _from_url("limit", DEFAULT_LIMIT)))


def sidebar() -> None:
    """Model and dataset pickers; the choice is stored in the session and holds across pages."""
    with st.sidebar:
        st.markdown("### Model and data")
        _persist("model", "default")
        _persist("dataset", "fashion-mnist")
        _persist("weights", "")
        st.selectbox("Model", MODEL_CHOICES, key="model", on_change=_save, args=("model",), accept_new_options=True,
                     help="'default' is the embedded Fashion-MNIST ViT; timm names need the hub or a weights file. "
                          "A checkpoint path (.safetensors) also works.")
        st.selectbox("Dataset", DATASET_CHOICES, key="dataset", on_change=_save, args=("dataset",),
                      accept_new_options=True, help="An image folder path (class/image.png) also works.")
        _persist("limit", DEFAULT_LIMIT)
        st.select_slider("Test images (every page)", LIMITS, key="limit", on_change=_save, args=("limit",),
                         help="A fixed, seeded subset of the test split used by every page, job, baseline and the "
                              "Report, so all numbers are measured the same way. Its 95% interval is about "
                              "±1.4 points at 2,000 images, ±2 at 1,000.")
        if st.session_state["model"] != "default":
            st.text_input("Weights file (optional)", key="weights", on_change=_save, args=("weights",),
                          help="A local timm weights file, used instead of downloading from the hub.")


def context() -> Context:
    """The Context for the sidebar's choice; on failure shows the message and stops the page."""
    try:
        return load_context(st.session_state.get("model", "default"), st.session_state.get("dataset", "fashion-mnist"),
                            st.session_state.get("weights") or None, os.environ.get("LOTUS_DB"))
    except LotusError as exc:
        st.error(f"{exc}")
        st.info("Pick the 'default' model and 'fashion-mnist' in the sidebar to use the embedded demo.")
        st.stop()
