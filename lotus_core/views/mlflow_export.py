"""Stored runs written to MLflow, where researchers track experiments: ``export RUN... --mlflow URI``.

One LOTUS run is one MLflow run, in the experiment ``LOTUS`` (or another name) of the tracking store at
``uri`` (``sqlite:///...`` or a server's ``http://...``; MLflow 3 refuses ``file://`` stores unless
``MLFLOW_ALLOW_FILE_STORE=true``):

- **params**: the run's full configuration, flattened (``lth.steps``; lists as canonical JSON), the same
  configuration whose hash is the LOTUS run id;
- **metrics**: every number of the summary (``summary.dense.accuracy``, ``summary.essential.omp.essential_sparsity``
  is the sweep's turning point, ``summary.ci95.0``/``.1`` an interval, a speed run's speed-up and its interval,
  ...); a kind with a curve (sweeps, LTH,
  fidelity, ...) also logs it step-indexed, one metric per series: ``accuracy/omp`` at step = sparsity (or patch
  fraction) in per mille, or the epoch; a kind without a curve logs the numbers of each stored point
  (``<point>/<field>``);
- **tags**: ``lotus.version``, ``lotus.run_key`` (the LOTUS run id), ``lotus.kind``, the key's fields that say
  what the result is (``lotus.model``, ``lotus.dataset``, ``lotus.data``, ``lotus.precision``, ...), the
  provenance the store keeps beside the run (``lotus.provenance.<field>``: where and how it was computed), the
  run's name as MLflow's run name and its note as MLflow's note;
- **artifacts**: ``table.csv`` (the points, as the Experiments page's CSV), ``config.json``, ``chart.html``
  (the Experiments page's curve, plotly.js from its CDN) and the masks as safetensors (``masks/``) where stored.

A sweep is one run with step-indexed metrics, not a parent with a child run per method: a LOTUS run is one
key in the store, so one MLflow run per key is what keeps "exported twice, not duplicated" a lookup by the
``lotus.run_key`` tag, and MLflow's chart of ``accuracy/*`` against step draws every method of the sweep on
one curve plot. An existing MLflow run with the key is left as it is (export again after deleting it there).
MLflow is an optional extra (``pip install -e '.[tracking]'``); only the client API is used, so no global
tracking URI is set in this process.
"""
from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import LotusError, first_line
from ..results.registry import experiments
from ..results.keys import canonical_json
from ..results.store import RunStatus, Store
from .experiments import get_run, mask_blobs, overlay_curves, overlay_figures, run_name

INSTALL = "MLflow is not installed: pip install -e '.[tracking]' (or pip install mlflow==3.17.2), then export again"
RUN_KEY = "lotus.run_key"
PROVENANCE = ("model", "dataset", "data", "device", "precision", "threads")  # the key's fields, as tags (where present)
MAX_LIST = 4  # a list of at most this many numbers (an interval) becomes metrics; a longer one (a curve) does not
PER_MILLE_AXES = ("sparsity", "fraction")  # curve axes in [0, 1]: step = round(1000 * x)


def tracking_uri() -> str | None:
    """Where the dashboard's Export button writes: ``$MLFLOW_TRACKING_URI``, set by whoever starts the server (a
    page never takes a typed URI, which would let a network visitor write files on the server)."""
    import os

    return os.environ.get("MLFLOW_TRACKING_URI") or None


def _client(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise LotusError(INSTALL) from None
    return MlflowClient(tracking_uri=uri)


def version() -> str:
    """The installed LOTUS version (``pyproject.toml``'s when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("lotus-core")
    except PackageNotFoundError:
        return "unknown"


def metric_name(text: str) -> str:
    """``text`` in MLflow's allowed characters (letters, digits, ``_ - . / space``): others become ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"a.b": leaf}`` (lists are leaves)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def param_text(value: Any) -> str:
    """A configuration value as an MLflow param: strings as they are, everything else as canonical JSON."""
    return value if isinstance(value, str) else canonical_json(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def numbers(value: Any, prefix: str) -> dict[str, float]:
    """The finite numbers in a nested mapping, by dotted path; a short list (an interval such as ``ci95``, at most
    :data:`MAX_LIST` long) gives one per position (``ci95.0``, ``ci95.1``)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{prefix}.{key}").items()}
    if isinstance(value, (list, tuple)) and len(value) <= MAX_LIST:
        return {k: v for i, item in enumerate(value) for k, v in numbers(item, f"{prefix}.{i}").items()}
    number = _number(value)
    return {} if number is None else {metric_name(prefix): number}


def params(run: dict) -> dict[str, str]:
    """The run's configuration as MLflow params."""
    return {metric_name(k): param_text(v) for k, v in flat(run["config"]).items()}


def metrics(store: Store, run: dict) -> list[tuple[str, float, int]]:
    """``(name, value, step)`` of everything numeric the run stored (see the module docstring)."""
    summary = {k: v for k, v in (run["summary"] or {}).items() if k != "run_id"}
    out = [(k, v, 0) for k, v in numbers(summary, "summary").items()]
    spec = experiments().get(run["kind"])
    points = store.points(run["id"])
    if spec is not None and spec.curve is not None:
        for row in spec.curve(points, run["summary"]):
            value = _number(row["accuracy"])
            if value is not None:
                step = round(1000 * row["x"]) if row["axis"] in PER_MILLE_AXES else round(row["x"])
                out.append((metric_name(f"accuracy/{row['series']}"), value, int(step)))
    else:
        for key, point in points.items():
            out += [(k, v, 0) for k, v in numbers(point, key.replace(".", "/")).items()]
    return out


def provenance(run: dict) -> dict:
    """Where and how the run was computed, as the store keeps it beside the run (empty for a store without it)."""
    value = run.get("provenance")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {"text": value}
    return value if isinstance(value, dict) else {}


def tags(run: dict) -> dict[str, str]:
    """LOTUS version, run key, kind, provenance, run name and note."""
    config = run["config"]
    out = {"lotus.version": version(), RUN_KEY: run["id"], "lotus.kind": run["kind"],
           "mlflow.runName": run.get("name") or run_name(run["kind"], config)}
    out.update({f"lotus.{k}": param_text(config[k]) for k in PROVENANCE if k in config})
    out.update({metric_name(f"lotus.provenance.{k}"): param_text(v)[:5000] for k, v in flat(provenance(run)).items()})
    if run.get("note"):
        out["mlflow.note.content"] = run["note"]
    return out


def artifacts(store: Store, run: dict, folder: Path) -> list[Path]:
    """The run's artifacts written under ``folder``: table.csv, config.json, chart.html, masks/*.safetensors."""
    run_id = run["id"]
    (folder / "table.csv").write_text(store.export_csv(run_id), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(run["config"], indent=2, sort_keys=True), encoding="utf-8")
    files = [folder / "table.csv", folder / "config.json"]
    figures = overlay_figures(overlay_curves(store, [run_id]))
    if figures:
        chart = folder / "chart.html"
        chart.write_text("\n".join(f.to_html(include_plotlyjs="cdn", full_html=i == 0) for i, f in
                                   enumerate(figures.values())), encoding="utf-8")
        files.append(chart)
    names = mask_blobs(store, run_id)
    if names:
        (folder / "masks").mkdir()
        for name in names:
            (folder / "masks" / name).write_bytes(store.get_blob(run_id, name))
        files.append(folder / "masks")
    return files


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def export_run(client, experiment_id: str, store: Store, run: dict) -> dict:
    """Write one finished LOTUS run to MLflow unless a run with its key is there already."""
    from mlflow.entities import Metric, Param

    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY}` = '{run['id']}'", max_results=1)
    if found:
        return {"run": run["id"], "mlflow_run": found[0].info.run_id, "created": False}
    created = client.create_run(experiment_id, tags=tags(run), run_name=tags(run)["mlflow.runName"])
    mlflow_id = created.info.run_id
    try:
        when = int(1000 * run["updated"])
        for chunk in _batches([Param(k, v) for k, v in params(run).items()], 100):
            client.log_batch(mlflow_id, params=chunk)
        for chunk in _batches([Metric(k, v, when, s) for k, v, s in metrics(store, run)], 1000):
            client.log_batch(mlflow_id, metrics=chunk)
        with tempfile.TemporaryDirectory() as tmp:
            for path in artifacts(store, run, Path(tmp)):
                if path.is_dir():
                    client.log_artifacts(mlflow_id, str(path), path.name)
                else:
                    client.log_artifact(mlflow_id, str(path))
        client.set_terminated(mlflow_id, "FINISHED")
    except Exception:
        client.delete_run(mlflow_id)  # half an export would be found as done next time
        raise
    return {"run": run["id"], "mlflow_run": mlflow_id, "created": True}


def export_runs(store: Store, run_ids: Iterable[str], uri: str, experiment: str = "LOTUS") -> list[dict]:
    """Write the finished runs ``run_ids`` (ids or unique prefixes) to the MLflow tracking store at ``uri``, one
    MLflow run each, in ``experiment``; returns ``{run, mlflow_run, created}`` per run (``created`` False: it was
    exported before). Raises LotusError without MLflow, for an unknown or unfinished run, or an unusable ``uri``."""
    runs = [get_run(store, r) for r in run_ids]
    for run in runs:
        if run["status"] != RunStatus.DONE:
            raise LotusError(f"run {run['id']} is {run['status']}; only finished runs are exported")
    try:
        client = _client(uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    except LotusError:
        raise
    except Exception as exc:  # MLflow raises its own types for a bad URI, a file store (3.x), an unreachable server
        text = first_line(exc)
        raise LotusError(f"cannot open the MLflow tracking store {uri!r} ({text[:120]}); pass a sqlite:/// URI "
                         "or a reachable server") from None
    return [export_run(client, experiment_id, store, run) for run in runs]


__all__ = ["INSTALL", "export_run", "export_runs", "metrics", "params", "tags", "tracking_uri"]
