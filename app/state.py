"""The shared sidebar: model and dataset choice, held across pages, and the cached Context.

Models and datasets are cached with ``st.cache_resource`` (one copy per server); pages must
never modify ``ctx.model``: prune or train ``ctx.copy_model()``.
"""
from __future__ import annotations

import os

import streamlit as st

from lotus_core.core.context import Context, open_context
from lotus_core.core.paths import check_served_path, is_loopback, serve_roots
from lotus_core.data import DATASETS
from lotus_core.core.errors import LotusError

MODEL_CHOICES = ["default", "vit_small_patch16_224.augreg_in21k_ft_in1k", "vit_small_patch16_224.dino",
                 "vit_tiny_patch16_224.augreg_in21k_ft_in1k"]
DATASET_CHOICES = [name for name in DATASETS if name != "imagefolder"]


@st.cache_resource(show_spinner="Loading model and data...", max_entries=4)
def load_context(model: str, dataset: str, weights: str | None = None, db: str | None = None) -> Context:
    if not is_loopback(st.get_option("server.address")):  # served on a network: only configured folders
        roots = serve_roots()
        for what, value in (("model", model), ("dataset", dataset), ("weights", weights)):
            check_served_path(value, what, roots)
    return open_context(model, dataset, weights=weights or None, db=db)


def _persist(key: str, default: str) -> None:
    """Keep a widget's value across pages (Streamlit drops widget state of unrendered pages)."""
    st.session_state.setdefault(f"_{key}", default)
    st.session_state[key] = st.session_state[f"_{key}"]


def _save(key: str) -> None:
    st.session_state[f"_{key}"] = st.session_state[key]


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
