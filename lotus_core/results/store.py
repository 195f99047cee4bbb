"""The results store: SQLite in WAL mode, one row per experiment keyed by its config hash.

An experiment (an evaluation, a sweep, a lottery-ticket run, ...) is identified by
:func:`config_id`, the hash of its full configuration (model id with checkpoint hash,
dataset, method, hyperparameters, seed), so nobody invents run names and a repeated
request is served from the store. Long runs write each finished piece (a sweep point, an
LTH round, a training epoch) as a *point* the moment it exists, so an interrupted run
resumes where it stopped and loses nothing. Masks and other binary artefacts are *blobs*.

Several processes may read and write at once (a background job and the dashboard): every
call opens its own short connection with a busy timeout, and WAL lets readers proceed
while a writer commits.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from ..core.errors import LotusError
from ..core.paths import DEFAULT_DB

if TYPE_CHECKING:  # pandas is imported by the two methods that return tables: evaluations start faster
    import pandas as pd


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,          -- config_id(config)
    kind TEXT NOT NULL,           -- 'evaluate', 'sweep', 'lth', 'issp', 'lottery-train', ...
    model TEXT,                   -- model.lotus_id (name@checkpoint-hash)
    dataset TEXT,
    config TEXT NOT NULL,         -- canonical JSON of the full configuration
    status TEXT NOT NULL,         -- queued | running | done | failed | cancelling | cancelled
    progress TEXT,                -- JSON, e.g. {"round": 3, "of": 10, "accuracy": 0.88}
    summary TEXT,                 -- JSON headline numbers
    error TEXT,                   -- one-line message when failed
    created REAL NOT NULL,
    updated REAL NOT NULL,
    duration_s REAL
);
CREATE TABLE IF NOT EXISTS points (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,            -- e.g. 'omp@0.4000', 'round-3', 'epoch-2'
    data TEXT NOT NULL,           -- JSON
    created REAL NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS blobs (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,           -- e.g. 'mask-round-3.safetensors'
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS runs_kind_model ON runs(kind, model);
"""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces); dataclasses and tuples are normalised."""
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "item"):
            return o.item()
        raise TypeError(f"cannot hash {type(o).__name__} in a config")

    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)


def config_id(config: Any) -> str:
    """The experiment id: the first 16 hex digits of the SHA-256 of the canonical JSON config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


class Store:
    """SQLite results store (see module docstring). ``path`` defaults to ``$LOTUS_DB`` or data/lotus.db."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path or os.environ.get("LOTUS_DB") or DEFAULT_DB)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise LotusError(f"results store {self.path} cannot be opened ({exc}); move it away or pass another --db") from None
        except OSError as exc:
            raise LotusError(f"results store {self.path} cannot be created ({exc}); pass a writable --db path") from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived autocommit connection, closed on exit."""
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=60000")
            con.execute("PRAGMA foreign_keys=ON")
            con.row_factory = sqlite3.Row
            yield con
        finally:
            con.close()

    # ----------------------------------------------------------------- runs
    def get_run(self, run_id: str) -> dict | None:
        """The run as a dict with decoded JSON fields, or None."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return _decode(row) if row else None

    def start_run(self, kind: str, config: Mapping | Any, model: str | None = None, dataset: str | None = None,
                  status: str = "running") -> str:
        """Create (or reopen, keeping its points) the run for ``config``; returns its id."""
        run_id, now = config_id(config), time.time()
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs(id, kind, model, dataset, config, status, created, updated) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET status=excluded.status, updated=excluded.updated, error=NULL",
                (run_id, kind, model, dataset, canonical_json(config), status, now, now),
            )
        return run_id

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET status=?, error=?, updated=? WHERE id=?", (status, error, time.time(), run_id))

    def set_progress(self, run_id: str, progress: Mapping) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET progress=?, updated=? WHERE id=?", (json.dumps(progress), time.time(), run_id))

    def finish_run(self, run_id: str, summary: Mapping, duration_s: float | None = None, status: str = "done") -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET status=?, summary=?, duration_s=COALESCE(?, duration_s), updated=? WHERE id=?",
                        (status, json.dumps(summary), duration_s, time.time(), run_id))

    def cancel_requested(self, run_id: str) -> bool:
        """True once someone asked this run to stop (status 'cancelling')."""
        run = self.get_run(run_id)
        return run is not None and run["status"] in ("cancelling", "cancelled")

    def delete_run(self, run_id: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def runs(self, kind: str | None = None, model: str | None = None) -> pd.DataFrame:
        """All runs (newest first) as a DataFrame with decoded config/summary/progress columns."""
        import pandas as pd

        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if kind:
            sql, args = sql + " AND kind=?", args + [kind]
        if model:
            sql, args = sql + " AND model=?", args + [model]
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY created DESC", args).fetchall()
        cols = ["id", "kind", "model", "dataset", "config", "status", "progress", "summary", "error",
                "created", "updated", "duration_s"]
        return pd.DataFrame([_decode(r) for r in rows], columns=cols)

    def cached(self, kind: str, config: Mapping | Any, compute: Callable[[], Mapping], model: str | None = None,
               dataset: str | None = None, refresh: bool = False) -> dict:
        """The stored summary of a finished run with this ``config``, computing and storing it if absent.

        ``refresh=True`` recomputes (and overwrites) even when a result is stored.
        """
        run = self.get_run(config_id(config))
        if run is not None and run["status"] == "done" and not refresh:
            return run["summary"]
        run_id = self.start_run(kind, config, model, dataset)
        t0 = time.perf_counter()
        try:
            summary = dict(compute())
        except BaseException as exc:
            self.set_status(run_id, "failed", str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
            raise
        self.finish_run(run_id, summary, time.perf_counter() - t0)
        return summary

    # ----------------------------------------------------------------- points
    def put_point(self, run_id: str, key: str, data: Mapping) -> None:
        """Store one finished piece of a run (written immediately; replaces the same key)."""
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO points(run_id, key, data, created) VALUES (?,?,?,?)",
                        (run_id, key, json.dumps(data), time.time()))
            con.execute("UPDATE runs SET updated=? WHERE id=?", (time.time(), run_id))

    def get_point(self, run_id: str, key: str) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT data FROM points WHERE run_id=? AND key=?", (run_id, key)).fetchone()
        return json.loads(row["data"]) if row else None

    def points(self, run_id: str) -> dict[str, dict]:
        """All points of a run, in the order they were written."""
        with self._connect() as con:
            rows = con.execute("SELECT key, data FROM points WHERE run_id=? ORDER BY created, key", (run_id,)).fetchall()
        return {r["key"]: json.loads(r["data"]) for r in rows}

    def points_frame(self, run_id: str) -> pd.DataFrame:
        """A run's points as a table: one row per point, its key plus its (flattened) fields."""
        import pandas as pd

        pts = self.points(run_id)
        if not pts:
            return pd.DataFrame(columns=["key"])
        frame = pd.json_normalize([{"key": k, **v} for k, v in pts.items()])
        return frame

    def export_csv(self, run_id: str, path: str | Path | None = None) -> str:
        """A run's points table as CSV text (also written to ``path`` when given)."""
        if self.get_run(run_id) is None:
            raise LotusError(f"no run {run_id} in {self.path}; list runs with `python -m lotus_core runs`")
        text = self.points_frame(run_id).to_csv(index=False)
        if path:
            Path(path).write_text(text)
        return text

    # ----------------------------------------------------------------- blobs
    def put_blob(self, run_id: str, name: str, data: bytes) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO blobs(run_id, name, data) VALUES (?,?,?)", (run_id, name, data))

    def get_blob(self, run_id: str, name: str) -> bytes | None:
        with self._connect() as con:
            row = con.execute("SELECT data FROM blobs WHERE run_id=? AND name=?", (run_id, name)).fetchone()
        return bytes(row["data"]) if row else None

    def blob_names(self, run_id: str) -> list[str]:
        with self._connect() as con:
            return [r["name"] for r in con.execute("SELECT name FROM blobs WHERE run_id=? ORDER BY name", (run_id,))]


def _decode(row: sqlite3.Row) -> dict:
    out = dict(row)
    for key in ("config", "summary", "progress"):
        if out.get(key):
            out[key] = json.loads(out[key])
    return out
