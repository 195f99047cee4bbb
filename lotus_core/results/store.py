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
import json
import sqlite3
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..core.errors import LotusError
from .keys import canonical_json, config_id
from ..core.paths import store_path
from .schema import check_schema, connect, decode_row, upgrade

if TYPE_CHECKING:  # pandas is imported by the two methods that return tables: evaluations start faster
    import pandas as pd


class RunStatus(StrEnum):
    """The status of a stored run (stored as its text; compares equal to it)."""

    QUEUED = "queued"  # submitted to the background worker, not started
    RUNNING = "running"
    DONE = "done"  # finished; its summary is final and is served instead of recomputing
    FAILED = "failed"  # raised an error (the one-line message is in ``error``)
    CANCELLING = "cancelling"  # asked to stop; ends at its next check
    CANCELLED = "cancelled"  # stopped on request; finished points are kept
    INTERRUPTED = "interrupted"  # killed (Ctrl-C, a dead worker); finished points are kept, rerun to resume


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELLING)
"""Statuses of a run that a worker or a process may still write to (cancel before deleting)."""


BOOKKEEPING = ("order|", "search|")  # point keys a run keeps for its own use (an image order, a batch-size search),
# not results: left out of its table and its CSV


class Store:
    """SQLite results store (see module docstring); ``path`` as :func:`store_path` resolves it.

    ``create=False`` (read-only commands such as ``runs`` and ``export``) refuses a path where no
    store exists instead of creating folders and an empty store there.
    """

    def __init__(self, path: str | Path | None = None, create: bool = True):
        self.path = store_path(path)
        if not create and not self.path.is_file():
            raise LotusError(f"no results store at {self.path}; check --db / LOTUS_DB "
                             "(a store is created by the first command that computes something)")
        if not create and self.path.stat().st_size == 0:  # read-only commands write no schema into it
            raise LotusError(f"{self.path} is empty (0 bytes), not a results store; check --db / LOTUS_DB")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                check_schema(con, self.path)
                if not create:
                    return
                old = upgrade(con)
            if old:  # written before results carried provenance: re-keyed once (results.provenance)
                from .provenance import migrate_store

                migrate_store(str(self.path))
        except OSError as exc:
            raise LotusError(f"results store {self.path} cannot be created ({exc.strerror or exc}); "
                             "pass a writable --db path") from None

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A short-lived autocommit connection to this store (:func:`~lotus_core.results.schema.connect`)."""
        return connect(self.path)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep one idle connection to this store open inside (one command's work, say).

        SQLite checkpoints a WAL store into the main file and deletes its WAL whenever the *last* connection
        closes: with a short connection per call, that is two fsyncs and two unlinks per call (a scouted
        turning-point search makes about 480 such calls, 1,475 fsyncs in all). With one connection held, the
        WAL stays and is checkpointed as it fills, and once on exit. Nothing is read or locked meanwhile (the
        query that maps the WAL index ends at once). Best effort: a store this cannot open is left to the
        calls inside, which say what is wrong in their one line."""
        try:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error:
            yield
            return
        try:
            try:
                con.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
            except sqlite3.Error:
                pass
            yield
        finally:
            con.close()

    # ----------------------------------------------------------------- runs
    def get_run(self, run_id: str) -> dict | None:
        """The run as a dict with decoded JSON fields, or None."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return decode_row(row) if row else None

    def start_run(self, kind: str, config: Mapping | Any, model: str | None = None, dataset: str | None = None,
                  status: RunStatus = RunStatus.RUNNING, provenance: Mapping | None = None) -> str:
        """Create (or reopen, keeping its points) the run for ``config``; returns its id. ``provenance``: where
        it is computed (:func:`~lotus_core.results.provenance.machine`)."""
        from .keys import reuse_ids

        run_id, now = config_id(config), time.time()
        plain = json.loads(canonical_json(config))
        key_id, family = reuse_ids(plain) if isinstance(plain, dict) else (run_id, run_id)
        prov = None if provenance is None else json.dumps(provenance, sort_keys=True)
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs(id, kind, model, dataset, config, status, created, updated, key_id, family, provenance) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status=excluded.status, "
                "updated=excluded.updated, error=NULL, provenance=COALESCE(excluded.provenance, provenance)",
                (run_id, kind, model, dataset, canonical_json(config), status, now, now, key_id, family, prov),
            )
        return run_id

    def alike(self, key_id: str, family: str) -> list[dict]:
        """Finished runs of the same key (``key_id``) or, failing that, the same family (another training split),
        newest first: the same result computed elsewhere (see :mod:`lotus_core.results.provenance`)."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs WHERE status='done' AND (key_id=? OR family=?) "
                               "ORDER BY key_id=? DESC, created DESC", (key_id, family, key_id)).fetchall()
        return [decode_row(r) for r in rows]

    def set_provenance(self, run_id: str, provenance: Mapping) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET provenance=? WHERE id=?", (json.dumps(provenance, sort_keys=True), run_id))

    # ----------------------------------------------------------------- pins (the Report's runs)
    def pins(self, model: str | None = None) -> dict[str, bool]:
        """Run id -> pinned (True) or unpinned by the user (False), for ``model`` (all when None)."""
        sql, args = "SELECT run_id, pinned FROM pins", ()
        if model is not None:
            sql, args = sql + " WHERE model=?", (model,)
        with self._connect() as con:
            return {r["run_id"]: bool(r["pinned"]) for r in con.execute(sql + " ORDER BY created", args)}

    def set_pin(self, run_id: str, pinned: bool) -> None:
        """Pin (or unpin) run ``run_id`` for the Report; the run must exist."""
        run = self.get_run(run_id)
        if run is None:
            raise LotusError(f"no run {run_id} in {self.path}; list runs with `python -m lotus_core runs`")
        with self._connect() as con:
            con.execute("INSERT INTO pins(run_id, model, dataset, pinned, created) VALUES (?,?,?,?,?) "
                        "ON CONFLICT(run_id) DO UPDATE SET pinned=excluded.pinned",
                        (run_id, run["model"], run["dataset"], int(pinned), time.time()))

    def claim(self, run_id: str, owner: str, lease_s: float, dead_owner: str | None = None) -> bool:
        """Make ``owner`` the computing owner of run ``run_id`` (status running, fresh heartbeat).

        Refused (False) while another owner holds a live lease on it: status running or cancelling
        with a heartbeat (or, for rows without one, an update) younger than ``lease_s`` seconds;
        and for finished runs. A stale owner's run is taken over (a cancelled one resumes), and so is
        one held by ``dead_owner`` (an owner known to be dead, see :func:`~lotus_core.results.lease.owner_dead`).
        """
        now = time.time()
        with self._connect() as con:
            cur = con.execute(
                "UPDATE runs SET status='running', owner=?, heartbeat=?, updated=?, error=NULL WHERE id=? "
                "AND status != 'done' AND NOT (status IN ('running', 'cancelling') "
                "AND COALESCE(owner, '') NOT IN (?, ?) AND COALESCE(heartbeat, updated) >= ?)",
                (owner, now, now, run_id, owner, dead_owner or owner, now - lease_s))
            return cur.rowcount == 1

    def renew(self, run_id: str, owner: str) -> bool:
        """Renew ``owner``'s heartbeat on ``run_id``; False when the run is no longer ``owner``'s."""
        with self._connect() as con:
            cur = con.execute("UPDATE runs SET heartbeat=? WHERE id=? AND owner=?", (time.time(), run_id, owner))
            return cur.rowcount == 1

    def live_owner(self, run_id: str, lease_s: float) -> str | None:
        """The owner token holding a live lease on ``run_id`` (see :meth:`claim`), or None."""
        from .lease import owner_dead

        run = self.get_run(run_id)
        if run is None or run["status"] not in ("running", "cancelling"):
            return None
        if (run["heartbeat"] or run["updated"]) < time.time() - lease_s or owner_dead(run["owner"]):
            return None
        return run["owner"] or "a process without a lease"

    def set_job(self, run_id: str, job: Mapping) -> None:
        """Record what a worker needs to (re)start run ``run_id``: ``{spec, kind, config}``."""
        with self._connect() as con:
            con.execute("UPDATE runs SET job=? WHERE id=?", (json.dumps(job, sort_keys=True), run_id))

    def stale_jobs(self, lease_s: float) -> list[dict]:
        """Background jobs waiting in the queue or abandoned (their owner's lease ran out, or the owner
        is a dead process of this machine): what a worker resumes."""
        from .lease import owner_dead

        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs WHERE job IS NOT NULL AND status IN ('queued', 'running') "
                               "ORDER BY created").fetchall()
        limit = time.time() - lease_s
        return [decode_row(r) for r in rows if r["status"] == "queued" or (r["heartbeat"] or r["updated"]) < limit
                or owner_dead(r["owner"])]

    def settle_abandoned_cancels(self, lease_s: float) -> int:
        """Runs asked to cancel whose owner died before it saw the request become 'cancelled'."""
        with self._connect() as con:
            return con.execute("UPDATE runs SET status='cancelled', updated=? WHERE status='cancelling' AND "
                               "COALESCE(heartbeat, updated) < ?", (time.time(), time.time() - lease_s)).rowcount

    # ----------------------------------------------------------------- workers
    def worker_beat(self, token: str, pid: int, host: str) -> None:
        """Register (or renew) the worker ``token`` of this store."""
        now = time.time()
        with self._connect() as con:
            con.execute("INSERT INTO workers(token, pid, host, started, heartbeat) VALUES (?,?,?,?,?) "
                        "ON CONFLICT(token) DO UPDATE SET heartbeat=excluded.heartbeat", (token, pid, host, now, now))

    def worker_gone(self, token: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM workers WHERE token=?", (token,))

    def live_workers(self, lease_s: float) -> list[dict]:
        """Workers whose heartbeat is younger than ``lease_s`` seconds (older rows are deleted)."""
        now = time.time()
        with self._connect() as con:
            con.execute("DELETE FROM workers WHERE heartbeat < ?", (now - 4 * lease_s,))
            rows = con.execute("SELECT * FROM workers WHERE heartbeat >= ? ORDER BY started",
                               (now - lease_s,)).fetchall()
        return [dict(r) for r in rows]

    def set_status(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET status=?, error=?, updated=? WHERE id=?", (status, error, time.time(), run_id))

    def set_progress(self, run_id: str, progress: Mapping) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET progress=?, updated=? WHERE id=?", (json.dumps(progress), time.time(), run_id))

    def finish_run(self, run_id: str, summary: Mapping, duration_s: float | None = None,
                   status: RunStatus = RunStatus.DONE) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET status=?, summary=?, duration_s=COALESCE(?, duration_s), updated=? WHERE id=?",
                        (status, json.dumps(summary), duration_s, time.time(), run_id))

    def annotate(self, run_id: str, name: str | None, note: str | None) -> None:
        """Set a run's name and note (None or "" clears one); a rerun keeps them."""
        with self._connect() as con:
            con.execute("UPDATE runs SET name=?, note=? WHERE id=?", (name or None, note or None, run_id))

    def cancel_requested(self, run_id: str) -> bool:
        """True once someone asked this run to stop (status cancelling)."""
        run = self.get_run(run_id)
        return run is not None and run["status"] in (RunStatus.CANCELLING, RunStatus.CANCELLED)

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
                "created", "updated", "duration_s", "owner", "heartbeat", "name", "note", "provenance"]
        return pd.DataFrame([_settled(decode_row(r)) for r in rows], columns=cols)

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

        pts = {k: v for k, v in self.points(run_id).items() if not k.startswith(BOOKKEEPING)}
        if not pts:
            return pd.DataFrame(columns=["key"])
        frame = pd.json_normalize([{"key": k, **v} for k, v in pts.items()])
        return frame

    def export_csv(self, run_id: str, path: str | Path | None = None) -> str:
        """A run's points table as CSV text (also written to ``path`` when given; its folder must exist), with a
        ``computed`` column naming where it was computed when the run records its provenance."""
        out = Path(path).expanduser() if path else None
        if out is not None and out.is_dir():
            raise LotusError(f"--out {out} is a folder; give a file path such as {out / (run_id + '.csv')}")
        if out is not None and not out.parent.is_dir():
            raise LotusError(f"--out {out}: folder {out.parent} does not exist; create it or pick another path")
        run = self.get_run(run_id)
        if run is None:
            raise LotusError(f"no run {run_id} in {self.path}; list runs with `python -m lotus_core runs`")
        frame = self.points_frame(run_id)
        if frame.empty:  # a result held in its summary (e.g. the OMP-vs-ticket table's rows): export that
            import pandas as pd

            summary = {k: v for k, v in (run["summary"] or {}).items() if k != "run_id"}
            rows = next((v for v in summary.values() if isinstance(v, list) and v
                         and all(isinstance(r, dict) for r in v)), None)
            frame = pd.json_normalize(rows if rows is not None else [summary]) if summary else frame
        if run.get("provenance") and not frame.empty:  # where the numbers were computed, on every row
            from .provenance import label

            frame = frame.assign(computed=label(run["provenance"]))
        text = frame.to_csv(index=False)
        if out is not None:
            try:
                out.write_text(text)
            except OSError as exc:
                raise LotusError(f"cannot write {out} ({exc.strerror}); pass a writable --out path") from None
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


def _settled(run: dict) -> dict:
    """``run`` as a listing shows it: a ``running`` row whose owner is a dead process of this machine (killed, or
    stopped by a full disk that left no room to record it) is ``interrupted``; rerunning resumes it (its row is
    taken over as before). Read-only: the row itself is not written."""
    from .lease import owner_dead

    if run.get("status") in (RunStatus.RUNNING, RunStatus.CANCELLING) and owner_dead(run.get("owner")):
        return {**run, "status": RunStatus.INTERRUPTED,
                "error": run.get("error") or "its process ended; rerun to resume"}
    return run
