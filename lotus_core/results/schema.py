"""The results store's SQLite file: its schema, the version check that refuses a newer LOTUS's store or another
program's file, the upgrade of an older store, and the short connections every store call opens (a damaged
file or a full disk becomes one line: :class:`StoreFull` for the latter, so a run resumes once space is freed).
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Iterator

from ..core.errors import LotusError


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,          -- config_id(config)
    kind TEXT NOT NULL,           -- 'evaluate', 'sweep', 'lth', 'issp', 'lottery-train', ...
    model TEXT,                   -- model.lotus_id (name@checkpoint-hash)
    dataset TEXT,
    config TEXT NOT NULL,         -- canonical JSON of the full configuration
    status TEXT NOT NULL,         -- RunStatus: queued | running | done | failed | cancelling | cancelled | interrupted
    owner TEXT,                   -- token of the process computing it (lease.token()), NULL when none
    heartbeat REAL,               -- the owner's last heartbeat (the lease runs out lease_s() after it)
    job TEXT,                     -- JSON {spec, kind, config} of a background job: what a worker resumes
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
CREATE TABLE IF NOT EXISTS workers (
    token TEXT PRIMARY KEY,       -- lease.token() of a worker process of this store
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL       -- renewed every heartbeat_s(); the worker is live while it is fresh
);
CREATE TABLE IF NOT EXISTS pins (
    run_id TEXT PRIMARY KEY,      -- a run the Report is built from (views.report); the demo's are pinned by default
    model TEXT,
    dataset TEXT,
    pinned INTEGER NOT NULL,      -- 1 pinned, 0 unpinned by the user (kept so the demo's default is not restored)
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_kind_model ON runs(kind, model);
"""
# Columns added after the first release: ALTER TABLE adds them to older stores on open.
ADDED_COLUMNS = {"owner": "TEXT", "heartbeat": "REAL", "job": "TEXT",
                 "name": "TEXT", "note": "TEXT",  # name, note: the user's words for a run (never part of its key)
                 "key_id": "TEXT", "family": "TEXT",  # results.provenance.reuse_ids: the same result computed elsewhere
                 "provenance": "TEXT"}  # JSON: where and how it was computed (results.provenance.machine)


STORE_VERSION = 1  # PRAGMA user_version this LOTUS writes; a store with a higher one is a newer LOTUS's: refused
KNOWN_TABLES = frozenset({"runs", "points", "blobs", "workers", "pins"})
REQUIRED_COLUMNS = frozenset({"id", "kind", "model", "dataset", "config", "status", "created", "updated"})


class StoreFull(LotusError):
    """The store's disk is full: the run is marked interrupted and resumes once space is freed."""


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full: SQLite's ``database or disk is full`` or ENOSPC."""
    import errno

    return isinstance(exc, StoreFull) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) \
        or (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc))


def check_schema(con: sqlite3.Connection, path: Path) -> None:
    """Refuse a store of a newer LOTUS (user_version above :data:`STORE_VERSION`, or tables and columns this
    one does not know) and an SQLite file of another program, before anything reads or writes it."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > STORE_VERSION:
        raise LotusError(f"results store {path} was written by a newer LOTUS (store version {version}, this "
                         f"one knows {STORE_VERSION}); upgrade LOTUS or pass another --db")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if not r[0].startswith("sqlite_")}
    if not tables:
        return  # a new, empty file
    if "runs" not in tables:
        raise LotusError(f"{path} is an SQLite file of another program (tables: "
                         f"{', '.join(sorted(tables))[:80]}), not a LOTUS results store; pass another --db")
    have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    known = REQUIRED_COLUMNS | {"owner", "heartbeat", "job", "progress", "summary", "error", "duration_s",
                                *ADDED_COLUMNS}
    if REQUIRED_COLUMNS - have:
        raise LotusError(f"{path} is not a LOTUS results store (its runs table lacks "
                         f"{sorted(REQUIRED_COLUMNS - have)[0]}); pass another --db")
    unknown = sorted((have - known) | (tables - KNOWN_TABLES))
    if unknown:
        raise LotusError(f"results store {path} has {unknown[0][:40]!r}, unknown to this LOTUS (written by a "
                         "newer version?); upgrade LOTUS or pass another --db")


def upgrade(con: sqlite3.Connection) -> bool:
    """Bring an opened store up to this LOTUS's schema (WAL, the tables, the columns added since the first
    release, the version); True when it holds runs written before results carried provenance (to re-key)."""
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(SCHEMA)
    have = {r["name"] for r in con.execute("PRAGMA table_info(runs)")}
    for column, kind in ADDED_COLUMNS.items():
        if column not in have:
            con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    con.execute("CREATE INDEX IF NOT EXISTS runs_key_id ON runs(key_id)")
    con.execute("CREATE INDEX IF NOT EXISTS runs_family ON runs(family)")
    if con.execute("PRAGMA user_version").fetchone()[0] == 0:
        con.execute(f"PRAGMA user_version={STORE_VERSION}")
    return con.execute("SELECT 1 FROM runs WHERE key_id IS NULL LIMIT 1").fetchone() is not None


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived autocommit connection, closed on exit; a damaged file becomes one LotusError."""
    try:
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
    except sqlite3.Error as exc:
        raise LotusError(f"results store {path} cannot be opened ({exc}); pass a writable --db path") from None
    try:
        con.execute("PRAGMA busy_timeout=60000")
        con.execute("PRAGMA foreign_keys=ON")
        con.row_factory = sqlite3.Row
        yield con
    except sqlite3.DatabaseError as exc:
        if disk_full(exc):
            raise StoreFull(f"the disk of results store {path} is full; free space and rerun to resume "
                            "(finished results are kept)") from None
        if isinstance(exc, sqlite3.OperationalError) and ("readonly" in str(exc) or "unable to open" in str(exc)):
            raise LotusError(f"results store {path} cannot be written ({exc}); pass a writable --db path "
                             "(copy a store on a read-only mount first)") from None
        if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError)) or (
                isinstance(exc, sqlite3.OperationalError) and "malformed" not in str(exc)
                and "not a database" not in str(exc) and "disk I/O" not in str(exc)):
            raise  # a bug or a lock timeout, not a damaged file
        raise LotusError(f"results store {path} cannot be opened: it is damaged ({exc}); move it away (or restore a backup) "
                         "and pass another --db") from None
    finally:
        con.close()


def decode_row(row: sqlite3.Row) -> dict:
    """A ``runs`` row as a dict, its JSON columns decoded."""
    out = dict(row)
    for key in ("config", "summary", "progress", "job", "provenance"):
        if out.get(key):
            out[key] = json.loads(out[key])
    return out
