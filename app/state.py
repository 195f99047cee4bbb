"""The shared sidebar: model, dataset, device and the evaluation protocol (how many test images), held
across pages and in the URL (a reload or a shared link reopens the same view), and the cached Context.

The number of test images is one setting for every page, job, baseline and the Report, so no page
compares results measured on different subsets.

Models and datasets are cached with ``st.cache_resource`` (one copy per server); pages must
never modify ``ctx.model``: prune or train ``ctx.copy_model()``. The model list holds the
built-in choices, the transfer demo's pre-trained model and every fine-tuned model known to
the results store; a model whose head is not trained on the dataset is marked here.
"""
from __future__ import annotations

import os
from collections.abc import Container
from typing import Any

import streamlit as st
import torch

from app import ui

from lotus_core.context import Context, open_context
from lotus_core.core.paths import check_served_path, is_loopback, serve_roots
from lotus_core.core.device import describe
from lotus_core.data import DATASETS
from lotus_core.core.errors import LotusError, os_error_line
from lotus_core.models.loading import TRANSFER_WEIGHTS
from lotus_core.results.store import Store
from lotus_core.training.evaluate import DEFAULT_LIMIT
from lotus_core.training.fine_tuned import fine_tuned_models

MODEL_CHOICES = ["default", "vit_small_patch16_224.augreg_in21k_ft_in1k", "vit_small_patch16_224.dino",
                 "vit_tiny_patch16_224.augreg_in21k_ft_in1k"]
DATASET_CHOICES = [name for name in DATASETS if name != "imagefolder"]
DEVICE_CHOICES = ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
LIMITS = [200, 500, 1000, 2000, 5000, 10000]  # test images per evaluation (a fixed seeded subset)
URL_KEYS = {"model": "model", "dataset": "dataset", "limit": "n"}  # session key -> query parameter
MAX_URL_VALUE = 1024  # characters: a longer query parameter is refused (said once), never opened as a path


@st.cache_resource(show_spinner="Loading model and data...", max_entries=4)
def load_context(model: str, dataset: str, weights: str | None = None, db: str | None = None,
                 device: str | None = None) -> Context:
    if not is_loopback(st.get_option("server.address")):  # served on a network: only configured folders
        roots = serve_roots()
        for what, value in (("model", model), ("dataset", dataset), ("weights", weights)):
            check_served_path(value, what, roots)
    return open_context(model, dataset, weights=weights or None, db=db, device=device)


def model_choices() -> tuple[list[str], dict[str, str]]:
    """Model list (built-in names, the transfer demo, fine-tuned checkpoints in the store) and display labels."""
    labels = {str(TRANSFER_WEIGHTS): "transfer demo: pre-trained on Fashion-MNIST classes 0-4"}
    for m in fine_tuned_models(Store(os.environ.get("LOTUS_DB"))):
        labels[m["checkpoint"]] = (f"fine-tuned: {m['source'].split('@')[0]} on {m['dataset']} "
                                   f"({100 * m['accuracy']:.1f}%)")
    return MODEL_CHOICES + [p for p in labels if p not in MODEL_CHOICES], labels


def _decode(raw: str, default: Any, options: Container | None) -> Any:
    """``raw`` (a query parameter) as a value of ``default``'s type, among ``options`` when given;
    ValueError when it is not one."""
    def one(text: str, like: Any) -> Any:
        if isinstance(like, bool):
            if text not in ("0", "1"):
                raise ValueError(text)
            value = text == "1"
        else:
            value = type(like)(text)
        if options is not None and value not in options:
            raise ValueError(text)
        return value

    if isinstance(default, (list, tuple)):
        like = default[0] if default else next(iter(options), "") if options else ""
        values = [one(p, like) for p in raw.split(",") if p]
        if isinstance(default, tuple) and len(values) != len(default):  # a range: as many ends as the default
            raise ValueError(raw)
        return type(default)(values)
    return one(raw, default)


class between:  # noqa: N801 (reads as a value: options=between(0.1, 10.0))
    """Options of a number setting: any number from ``lo`` to ``hi``."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi

    def __contains__(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.lo <= value <= self.hi


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(_encode(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _from_url(key: str, default, options: Container | None = None):
    """The value of ``key``'s query parameter when it is a valid one, else ``default``."""
    raw = st.query_params.get(URL_KEYS.get(key, key), None)
    if raw is None:
        return default
    if len(raw) > MAX_URL_VALUE:
        st.session_state.setdefault("_url_refused", {})[URL_KEYS.get(key, key)] = len(raw)
        return default
    try:
        return _decode(raw, default, options)
    except (ValueError, TypeError):
        return default


def _say_refused(param: str) -> None:
    """One error box where a link's ``param`` value was refused for its length (:data:`MAX_URL_VALUE`)."""
    length = st.session_state.get("_url_refused", {}).pop(param, None)
    if length is not None:
        st.error(f"The link's `{param}` value is {length:,} characters long (at most {MAX_URL_VALUE:,}); "
                 "it was ignored.")


def _write_url(key: str) -> None:
    if key in URL_KEYS:
        st.query_params[URL_KEYS[key]] = _encode(st.session_state[key])
    elif key in st.session_state.get("_page_defaults", {}):
        if key in st.session_state["_chosen"]:
            st.query_params[key] = _encode(st.session_state[key])
        else:  # never chosen: the page's default, left out of the link
            st.query_params.pop(key, None)


def _persist(key: str, default, options: Container | None = None) -> None:
    """Keep a widget's value across pages (Streamlit drops widget state of unrendered pages) and in the URL
    (the sidebar's :data:`URL_KEYS` and the page settings of :func:`remember`)."""
    st.session_state.setdefault(f"_{key}", _from_url(key, default, options))
    st.session_state[key] = st.session_state[f"_{key}"]
    _write_url(key)


def _save(key: str) -> None:
    st.session_state[f"_{key}"] = st.session_state[key]
    if key in st.session_state.get("_page_defaults", {}):
        st.session_state["_chosen"].add(key)
    _write_url(key)


def remember(key: str, default: Any, options: Container | None = None) -> dict:
    """A page setting that survives a reload and a shared link: its value lives in the session and in
    the URL (query parameter ``key``, once the user chose it or a link carried it). Returns the widget's
    ``key``/``on_change``/``args``: ``st.multiselect("Methods", opts, **remember("methods", ["omp"], opts))``
    (give the widget no default of its own). A URL value of the wrong type, or not among
    ``options``, is ignored; a setting nobody chose follows the page's default when it changes (e.g.
    the newest runs)."""
    defaults = st.session_state.setdefault("_page_defaults", {})  # page settings of this session in the URL
    chosen = st.session_state.setdefault("_chosen", set())  # ... that the user chose (or a link carried)
    if f"_{key}" not in st.session_state and key in st.query_params and _from_url(key, default, options) != default:
        chosen.add(key)
    if f"_{key}" in st.session_state:
        if key not in chosen:  # never chosen: follows the page's default (e.g. the newest runs)
            st.session_state[f"_{key}"] = default
        elif isinstance(default, list) and options is not None:  # options may go (a deleted run)
            st.session_state[f"_{key}"] = [v for v in st.session_state[f"_{key}"] if v in options]
    defaults[key] = default
    _persist(key, default, options)
    _say_refused(key)
    return {"key": key, "on_change": _save, "args": (key,)}


def limit() -> int:
    """The number of test images every page evaluates on (the sidebar's setting)."""
    return int(st.session_state.get("_limit", _from_url("limit", DEFAULT_LIMIT, LIMITS)))


def sidebar() -> None:
    """Model and dataset pickers; the choice is stored in the session and holds across pages."""
    with st.sidebar:
        st.markdown("### Model and data")
        _persist("model", "default")
        _persist("dataset", "fashion-mnist")
        _persist("weights", "")
        _persist("device", "auto")
        for key in ("model", "dataset", "weights", "device"):
            _say_refused(URL_KEYS.get(key, key))
        choices, labels = model_choices()
        st.selectbox("Model", choices, key="model", on_change=_save, args=("model",), accept_new_options=True,
                     format_func=lambda m: labels.get(m, m),
                     help="'default' is the embedded Fashion-MNIST ViT; timm names need the hub or a weights file. "
                          "A checkpoint path (.safetensors) also works; fine-tuned models are listed once made.")
        st.selectbox("Dataset", DATASET_CHOICES, key="dataset", on_change=_save, args=("dataset",),
                      accept_new_options=True, help="An image folder path (class/image.png) also works.")
        _persist("limit", DEFAULT_LIMIT, LIMITS)
        _say_refused(URL_KEYS["limit"])
        st.select_slider("Test images (every page)", LIMITS, key="limit", on_change=_save, args=("limit",),
                         help="A fixed, seeded subset of the test split used by every page, job, baseline and the "
                              "Report, so all numbers are measured the same way. Its 95% interval is about "
                              "±1.4 points at 2,000 images, ±2 at 1,000.")
        if st.session_state["model"] != "default" and not st.session_state["model"].endswith(".safetensors"):
            st.text_input("Weights file (optional)", key="weights", on_change=_save, args=("weights",),
                          help="A local timm weights file, used instead of downloading from the hub.")
        st.selectbox("Device", DEVICE_CHOICES, key="device", on_change=_save, args=("device",),
                     help="Chosen once: the model is placed there and every computation runs there.")


def context() -> Context:
    """The Context for the sidebar's choice; on failure shows the message and stops the page."""
    try:
        ctx = load_context(st.session_state.get("model", "default"), st.session_state.get("dataset", "fashion-mnist"),
                           st.session_state.get("weights") or None, os.environ.get("LOTUS_DB"),
                           st.session_state.get("device", "auto"))
    except (LotusError, OSError) as exc:  # an OSError: a path typed in the sidebar (too long, unreadable, ...)
        if isinstance(exc, OSError):
            exc = LotusError(os_error_line(exc))
        ui.error(exc)  # the message quotes the path typed: shown literally
        st.info("Pick the 'default' model and 'fashion-mnist' in the sidebar to use the embedded demo.")
        st.stop()
    st.sidebar.caption(f"Running on {describe(ctx.device)}")
    if len(ctx.test) < limit():  # the slider offers more than this dataset has: say the real count
        st.sidebar.caption(f"This dataset has {len(ctx.test):,} test images: every page uses all {len(ctx.test):,}, "
                           f"not {limit():,}.")
    if ctx.head_problem:
        st.sidebar.warning(f"{ui.literal(ctx.head_problem)} (Overview: Fine-tune)")
    for note in [*getattr(ctx.model, "lotus_notes", ()), *ctx.test.notes]:  # a weights cast, an image conversion
        st.sidebar.caption(ui.literal(note))
    return ctx
