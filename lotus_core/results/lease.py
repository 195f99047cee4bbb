"""Who is computing a run right now: owner tokens, heartbeats and leases.

A process that computes a stored run (the CLI, a background worker, the dashboard) *claims* it:
the run's row gets the process's owner token and a heartbeat time, and a daemon thread
(:class:`Lease`) renews the heartbeat every ``heartbeat_s()`` seconds while the run computes.
Nobody else touches a run whose heartbeat is younger than ``lease_s()``; once it is older (the
owner was killed, its machine slept), any process may claim the run and resume it from its
stored points. A pid alone is never trusted: pids are reused and a killed child stays a
zombie until reaped, but only a live owner renews its heartbeat. The one shortcut: an owner
on this machine whose pid no longer runs (or is a zombie) is dead at once (:func:`owner_dead`),
so a CLI run killed with kill -9 can be rerun immediately.

``$LOTUS_HEARTBEAT_S`` (default 2 s) and ``$LOTUS_LEASE_S`` (default 15 s) tune the two
intervals; the lease must outlast several heartbeats.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import LotusError

if TYPE_CHECKING:
    from .store import Store

TOKEN = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""This process's owner token: host, pid and a random part (a reused pid gets a new token)."""


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.01 <= value <= 3600:
        raise LotusError(f"{name}={text!r} is not a number of seconds in [0.01, 3600]; fix it or unset it")
    return value


def heartbeat_s() -> float:
    """Seconds between two heartbeats of a running job (``$LOTUS_HEARTBEAT_S``, default 2)."""
    return _seconds("LOTUS_HEARTBEAT_S", 2.0)


def lease_s() -> float:
    """Seconds after its last heartbeat that a run is considered abandoned (``$LOTUS_LEASE_S``, default 15)."""
    return max(_seconds("LOTUS_LEASE_S", 15.0), 3 * heartbeat_s())


def token() -> str:
    """The owner token of this process (recomputed after a fork, whose pid differs)."""
    global TOKEN
    if TOKEN.split(":")[1] != str(os.getpid()):
        TOKEN = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return TOKEN


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie (killed, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def owner_dead(owner: str | None) -> bool:
    """True when ``owner`` (a token) names a process of this machine that no longer runs.

    Only a definite answer counts: an owner on another machine, or whose pid runs (perhaps
    reused by another program), is left to its lease.
    """
    parts = (owner or "").split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return not pid_alive(int(parts[1]))


class Lease:
    """Renews the heartbeat of run ``run_id`` (owned by this process) from a daemon thread.

    ``lost`` turns True when the row no longer names this process as owner (another process
    took the run over after this one stalled past the lease): the run must then stop.
    """

    def __init__(self, store: "Store", run_id: str):
        self.store, self.run_id, self.owner = store, run_id, token()
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{run_id}", daemon=True)

    def _beat(self) -> None:
        interval = heartbeat_s()
        while not self._stop.wait(interval):
            try:
                if not self.store.renew(self.run_id, self.owner):
                    self.lost = True
                    return
            except Exception:  # a busy or briefly unreadable store: try again at the next beat
                continue

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
