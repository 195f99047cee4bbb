"""The Experiments table: every stored run in one flat table, curves of chosen runs, downloads.

:func:`run_table` flattens :meth:`Store.runs` into one row per run with its headline numbers
(each kind's ``headline``, :mod:`lotus_core.results.registry`); :func:`overlay_curves` turns the
points of chosen runs into one long table (each kind's ``curve``) and
:func:`overlay_figures` draws it, one figure per x quantity (sparsity, epoch, patch fraction).
Accuracies and sparsities are fractions in [0, 1]; figures show percent.
"""
from __future__ import annotations

import html
import io
import json
import textwrap
import zipfile
from dataclasses import dataclass
from typing import Callable, Iterable

import pandas as pd
import plotly.graph_objects as go

from ..core.errors import LotusError
from ..core.text import refuse_control_characters
from ..results.registry import Headline, experiments
from ..results.keys import canonical_json
from ..results.store import ACTIVE, RunStatus, Store
from .figures import style, titled
from .tables import percent_text, readable

POINT_KINDS = ("prune-eval", "prune-decide", "prune-prefix")  # single evaluations (and early decisions) sweeps are made of (one run per point, shared by sweeps)
AUTOMATIC = {  # kinds the pages and other experiments store on their own as they compute, in words
    "evaluate": "the dense model's accuracy, measured by every page first (the baseline of its charts)",
    "prune-eval": "one point of a sparsity curve, shared by every sweep that contains it",
    "prune-decide": "one point of a turning-point search, decided from the fewest images",
    "prune-prefix": "how far a point's early decisions got (correct of the first images seen), which every "
                    "tolerance goes on from",
    "speed-accuracy": "the accuracy of one Speed configuration, shared by every speed run that measures it",
}
TABLE_COLUMNS = ["id", "name", "kind", "model", "dataset", "status", "created", "duration_s", "accuracy", "sparsity",
                 "headline", "note", "config", "error", "pinned", "computed"]
NAME_CHARS, NOTE_CHARS = 80, 2000  # the longest run name (one line) and note a user can give


# ---------------------------------------------------------------------------- headline numbers
def headline(kind: str, summary: dict | None) -> Headline:
    """The headline numbers of a run's summary (empty for a run without one)."""
    if not summary:
        return Headline()
    spec = experiments().get(kind)
    try:
        return spec.headline(summary)
    except (AttributeError, KeyError, TypeError):  # an unknown kind, or a summary written by an older version
        scalars = [(k, v) for k, v in summary.items() if isinstance(v, (int, float, str)) and k != "run_id"]
        return Headline(text=", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars[:4]))


# ---------------------------------------------------------------------------- the run table
def run_table(store: Store) -> pd.DataFrame:
    """Every stored run, newest first: :data:`TABLE_COLUMNS` (``name``: the user's name of the run, else its
    :func:`run_name`; ``config`` as canonical JSON text, ``created`` as a local timestamp, ``duration_s``
    in seconds, accuracy and sparsity fractions, ``pinned`` for the Report, ``computed``: where and how, its
    provenance in words)."""
    from ..results.provenance import label

    runs, pins = store.runs(), store.pins()
    rows = []
    for r in runs.itertuples(index=False):
        head = headline(r.kind, r.summary) if r.status == RunStatus.DONE else Headline()
        name, note = (v if isinstance(v, str) and v else None for v in (r.name, r.note))  # unset: None or NaN
        rows.append({"id": r.id, "name": name or run_name(r.kind, r.config), "note": note,
                     "kind": r.kind, "model": r.model, "dataset": r.dataset, "status": r.status,
                     "created": pd.Timestamp.fromtimestamp(r.created).floor("s"),
                     "duration_s": r.duration_s, "accuracy": head.accuracy, "sparsity": head.sparsity,
                     "headline": head.text, "config": canonical_json(r.config), "error": r.error,
                     "pinned": pins.get(r.id, False),  # pinned for the Report (views.report.pinned)
                     "computed": label(r.provenance if isinstance(r.provenance, dict) else None)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).astype({"accuracy": float, "sparsity": float, "duration_s": float})


def filter_runs(table: pd.DataFrame, kinds: Iterable[str] = (), statuses: Iterable[str] = (),
                models: Iterable[str] = (), text: str = "", points: bool = True) -> pd.DataFrame:
    """Rows of ``table`` whose kind, status and model are among those given (empty: any) and whose
    id, name, kind, model, dataset, status, headline, note or configuration contains ``text`` (case-insensitive);
    without ``points``, the runs of :data:`POINT_KINDS` are left out."""
    keep = pd.Series(True, index=table.index) if points else ~table["kind"].isin(POINT_KINDS)
    for column, allowed in (("kind", kinds), ("status", statuses), ("model", models)):
        allowed = list(allowed)
        if allowed:
            keep &= table[column].isin(allowed)
    if text.strip():
        haystack = table[["id", "name", "kind", "model", "dataset", "status", "headline", "note", "config"]] \
            .fillna("").astype(str) \
            .agg(" ".join, axis=1).str.lower()
        keep &= haystack.str.contains(text.strip().lower(), regex=False)
    return table[keep]


# ---------------------------------------------------------------------------- names
def _setting(name: str, value) -> str:
    if value is True:
        return name
    if value is False:
        return f"no {name}"
    if isinstance(value, (list, tuple)):
        return f"{name} " + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"


KEY_FIELDS = ("model", "dataset", "data", "device", "kind", "threads")  # what every run of a model shares
# (Context.key): the table shows model and dataset in columns of their own


def run_name(kind: str, config: dict, most: int = 4) -> str:
    """A run named by its kind and the settings that differ from the kind's defaults, e.g.
    ``"sweep: methods omp,wanda, refine"``; ``"sweep: defaults"`` when none does. Settings that
    do not fit in ``most`` are counted ("+2 more"); a kind without defaults shows its first settings
    besides the :data:`KEY_FIELDS` every run of the model shares."""
    import dataclasses

    spec = experiments().get(kind)
    try:
        defaults = dataclasses.asdict(spec.config_cls()) if spec is not None and spec.config_cls else None
    except TypeError:  # a config with required fields (a control names its LTH run and round)
        defaults = None
    if defaults is None:
        fields = spec.config_cls.__dataclass_fields__ if spec is not None and spec.config_cls else config
        items = [(k, config[k]) for k in fields if k in config and not isinstance(config[k], dict)
                 and k not in KEY_FIELDS]
    else:
        items = [(k, v) for k, v in config.items() if k in defaults and canonical_json(v) != canonical_json(defaults[k])]
    words = [_setting(k.replace("_", " "), v) for k, v in items]
    shown = ", ".join(words[:most]) + (f", +{len(words) - most} more" if len(words) > most else "")
    return f"{kind}: {shown or 'defaults'}"


# ---------------------------------------------------------------------------- curves
AXES = {"sparsity": "sparsity (% of scoped weights pruned)", "epoch": "epoch",
        "fraction": "patches deleted or inserted (% of the patches)"}
"""x quantity of a curve -> its axis title (sparsity and fraction are shown in percent)."""

CURVE_COLUMNS = ["run", "kind", "series", "axis", "x", "accuracy"]


def overlay_curves(store: Store, run_ids: Iterable[str]) -> pd.DataFrame:
    """The curves of the given runs (those of a kind with a ``curve``; others are skipped) as one
    table: :data:`CURVE_COLUMNS`, ``run`` being the user's name of the run or its :func:`run_name` (with its id's first six
    characters when two chosen runs share a name), sorted by run, series and x."""
    frames, runs = [], [r for r in (store.get_run(i) for i in run_ids) if r is not None]
    names = {r["id"]: r.get("name") or run_name(r["kind"], r["config"]) for r in runs}
    for run in runs:
        curve = getattr(experiments().get(run["kind"]), "curve", None)
        if curve is None:
            continue
        rows = curve(store.points(run["id"]), run["summary"])
        name = names[run["id"]]
        name += f" ({run['id'][:6]})" if list(names.values()).count(name) > 1 else ""
        frames.append(pd.DataFrame(rows, columns=CURVE_COLUMNS[2:]).assign(run=name, kind=run["kind"]))
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]
    return frame.sort_values(["run", "series", "x"], kind="stable", ignore_index=True)


LEGEND_CHARS = 40  # the longest line of a legend entry: it fits a 390 px phone below the chart


def legend_name(run: str, series: str) -> str:
    """A curve's legend entry, ``"<run>: <series>"``, escaped (run names are the user's words) and wrapped into
    lines of at most :data:`LEGEND_CHARS` characters: plotly never wraps a legend entry, so on a phone a long
    one is cut at the screen's edge and two curves of one run read the same."""
    name = f"{run}: {series}"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(name, LEGEND_CHARS, break_on_hyphens=False))


def overlay_figures(frame: pd.DataFrame) -> dict[str, go.Figure]:
    """One figure per x quantity in ``frame`` (from :func:`overlay_curves`): accuracy (%) against it,
    one line per run and series, the legend below the chart (it grows down, never into the plot)."""
    figures = {}
    for axis, part in frame.groupby("axis", sort=False):
        fig = go.Figure()
        scale = 1 if axis == "epoch" else 100
        for (run, series), line in part.groupby(["run", "series"], sort=False):
            name = legend_name(run, series)
            fig.add_trace(go.Scatter(x=scale * line["x"], y=100 * line["accuracy"], mode="lines+markers", name=name,
                                     hovertemplate=f"{name}<br>%{{x:.1f}}<br>accuracy %{{y:.2f}}%<extra></extra>"))
        style(fig, AXES.get(axis, axis), "top-1 accuracy (%)").update_layout(
            legend=dict(orientation="h", x=0, xanchor="left", y=-0.25, yanchor="top"))
        figures[axis] = titled(fig, f"Accuracy against {axis}")  # no room above for a legend: it is below
    return figures


def curve_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` whose kind has a curve."""
    return table[table["kind"].isin([k for k, spec in experiments().items() if spec.curve is not None])]


@dataclass
class Shown:
    """The Experiments table as filtered: ``rows`` (the runs of :func:`run_table` that pass, newest first,
    numbered from 0), ``display`` (those rows as a reader sees them: no empty column, a missing accuracy or
    sparsity reads "—", never "None") and the kinds among them nobody launched by hand (:data:`AUTOMATIC`)."""

    rows: pd.DataFrame
    display: pd.DataFrame
    automatic: list[str]


def shown_runs(table: pd.DataFrame, kinds: Iterable[str] = (), statuses: Iterable[str] = (),
               models: Iterable[str] = (), text: str = "", points: bool = True) -> Shown:
    """The rows of ``table`` that pass :func:`filter_runs`, for display."""
    rows = filter_runs(table, kinds, statuses, models, text, points).reset_index(drop=True)
    display = readable(rows, keep=["accuracy", "sparsity"])
    for column in ("accuracy", "sparsity"):  # a run without the number (a decision, a failed run) reads "—"
        display[column] = percent_text(display[column])
    return Shown(rows, display, [k for k in AUTOMATIC if k in set(rows["kind"])])


@dataclass
class Curves:
    """What the Curves section draws: one figure per x quantity (empty when there is nothing to draw), with
    ``message`` saying why not or ``caption`` which run is shown when none was selected."""

    figures: dict[str, go.Figure]
    message: str | None = None
    caption: str | None = None


def curves(store: Store, selected: pd.DataFrame, shown: pd.DataFrame) -> Curves:
    """The curves of the ``selected`` rows, or with none selected the newest run with a curve among ``shown``."""
    runs = curve_runs(selected if len(selected) else shown)
    if len(selected) and runs.empty:
        return Curves({}, "The selected runs have no curve (single evaluations and points); select a sweep, LTH, "
                          "ISSP, lottery-training, sensitivity or fidelity run.")
    if runs.empty:
        return Curves({}, "No run in the table has a curve yet: compute one on the Sparsity curves page.")
    ids = list(runs["id"] if len(selected) else runs["id"].head(1))
    caption = None if len(selected) else (f"Showing the newest run with a curve ({runs.iloc[0]['kind']} {ids[0][:6]}); "
                                          "select rows in the table to overlay others.")
    return Curves(overlay_figures(overlay_curves(store, ids)), caption=caption)


# ---------------------------------------------------------------------------- downloads and deletion
def get_run(store: Store, run_id: str) -> dict:
    """The stored run ``run_id`` (or the one run whose id starts with it), else a LotusError."""
    run = store.get_run(run_id)
    if run is not None:
        return run
    matches = [i for i in store.runs()["id"] if i.startswith(run_id)] if run_id else []
    if len(matches) == 1:
        return store.get_run(matches[0])
    if len(matches) > 1:
        raise LotusError(f"run id {run_id!r} is ambiguous ({len(matches)} runs start with it); give more digits")
    raise LotusError(f"no run {run_id!r} in {store.path}; list runs with `python -m lotus_core runs`")


def config_json(store: Store, run_id: str) -> str:
    """The run's full configuration as indented JSON (its hash is the run id)."""
    return json.dumps(get_run(store, run_id)["config"], indent=2, sort_keys=True)


def mask_blobs(store: Store, run_id: str) -> list[str]:
    """Names of the run's masks: its ``mask*.safetensors`` blobs (LTH and ISSP rounds, controls)."""
    names = store.blob_names(get_run(store, run_id)["id"])
    return [n for n in names if n.startswith("mask") and n.endswith(".safetensors")]


def _masks_name(run_id: str, names: list[str]) -> str:
    return f"{run_id}-{names[0]}" if len(names) == 1 else f"{run_id}-masks.zip"


def _masks_bytes(store: Store, run_id: str, names: list[str]) -> bytes:
    if len(names) == 1:
        return store.get_blob(run_id, names[0])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            archive.writestr(name, store.get_blob(run_id, name))
    return buffer.getvalue()


@dataclass(frozen=True)
class Download:
    """One file a run can be downloaded as; ``data()`` reads it from the store when asked."""

    label: str  # button label
    file_name: str
    mime: str
    data: Callable[[], str | bytes]


def downloads(store: Store, run_id: str) -> list[Download]:
    """A run's table (CSV of its points), its masks (when it has any) and its configuration (JSON)."""
    run_id = get_run(store, run_id)["id"]
    out = [Download("Table (CSV)", f"{run_id}.csv", "text/csv", lambda: store.export_csv(run_id))]
    names = mask_blobs(store, run_id)
    if names:
        label = "Mask (safetensors)" if len(names) == 1 else f"Masks ({len(names)} safetensors, zip)"
        out.append(Download(label, _masks_name(run_id, names),
                            "application/octet-stream" if len(names) == 1 else "application/zip",
                            lambda: _masks_bytes(store, run_id, names)))
    out.append(Download("Config (JSON)", f"{run_id}-config.json", "application/json",
                        lambda: config_json(store, run_id)))
    return out


def annotate_run(store: Store, run_id: str, name: str | None = None, note: str | None = None) -> dict:
    """Name and annotate a stored run (``run_id`` or a unique prefix): a one-line name of at most
    :data:`NAME_CHARS` characters and a note of at most :data:`NOTE_CHARS`; empty clears one. Names are
    the user's words, never part of the run's key. Returns the run as stored."""
    run = get_run(store, run_id)
    name, note = (name or "").strip(), (note or "").strip()
    if name != (run["name"] or ""):  # (a name stored before the check is kept until changed; output escapes it)
        refuse_control_characters(name, "a run name")  # one printable line: no terminal escapes, no line breaks
    if note != (run["note"] or ""):
        refuse_control_characters(note, "a run note", allow="\n")  # a note may have several lines
    if len(name) > NAME_CHARS:
        raise LotusError(f"a run name is one line of at most {NAME_CHARS} characters; put the rest in the note")
    if len(note) > NOTE_CHARS:
        raise LotusError(f"a note holds at most {NOTE_CHARS} characters (this one has {len(note)}); shorten it")
    store.annotate(run["id"], name, note)
    return store.get_run(run["id"])


def _flat(config: object, prefix: str = "") -> dict[str, object]:
    """A nested configuration as ``{"lth.steps": 100, ...}``."""
    if isinstance(config, dict):
        return {k: v for key, value in config.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): config}


def config_differences(store: Store, run_a: str, run_b: str) -> pd.DataFrame:
    """What differs between two runs' configurations (ids or unique prefixes): one row per setting
    (nested ones dotted, e.g. ``lth.steps``), with columns ``setting``, ``a``, ``b`` as JSON text (a
    setting one run lacks reads "(not set)"); kind, model and dataset first. Empty when they agree."""
    fa, fb = ({"kind": r["kind"], "model": r["model"], "dataset": r["dataset"], **_flat(r["config"])}
              for r in (get_run(store, run_a), get_run(store, run_b)))
    missing = object()
    rows = [{"setting": k, "a": "(not set)" if fa.get(k, missing) is missing else canonical_json(fa[k]),
             "b": "(not set)" if fb.get(k, missing) is missing else canonical_json(fb[k])}
            for k in list(fa) + [k for k in fb if k not in fa]
            if canonical_json(fa.get(k, None)) != canonical_json(fb.get(k, None)) or (k in fa) != (k in fb)]
    return pd.DataFrame(rows, columns=["setting", "a", "b"])


def delete_run(store: Store, run_id: str) -> dict:
    """Delete a finished, failed or cancelled run with its points and blobs; returns what was deleted.

    A queued or running run must be cancelled first (its worker would write to it again).
    """
    run = get_run(store, run_id)
    if run["status"] in ACTIVE:
        raise LotusError(f"run {run['id']} is {run['status']}; cancel it first, then delete it")
    store.delete_run(run["id"])
    return run
