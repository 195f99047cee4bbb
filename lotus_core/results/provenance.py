"""Where and how a stored result was computed (its provenance), kept apart from what it is (its key).

A result's key (:meth:`lotus_core.context.Context.key` plus the hyperparameters) names what it is: the
weights, the data it read, the method, its hyperparameters and seeds, and the precision policy. Where it was
computed is not part of that, but it matters to a reader, so every run row carries it (the ``provenance``
column, :func:`machine` when the run starts, :func:`finished` when it ends): device and CPU model with the
flags that decide bf16 speed (avx512_bf16, amx), the precision actually used, threads, torch/timm versions,
the load average before and after, wall time and date.

A run's id is the hash of its key plus :meth:`Context.computed` (device type, precision used, threads): the
facts that must match for a stored result to be reused silently. The store also indexes each run by
``key_id`` (its key alone) and ``family`` (its key without the training split): a result computed elsewhere
is found through them and served *with a label* (:func:`label`) instead of recomputed; recomputing it here
keeps both. The rules and the measured bf16/fp32 and thread-count differences are in docs/provenance.md.

:func:`migrate_store` re-keys a store written before this scheme (configs that held device, precision used
and threads in their key), moving those facts into provenance; :class:`~lotus_core.results.store.Store`
runs it on open, and the shipped demo store was migrated with it.
"""
from __future__ import annotations

import functools
import os
import platform
import sqlite3
import time
from typing import Any

from ..core.text import count_text
from .keys import COMPUTED, canonical_json, config_id, reuse_ids

RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")  # what decides CPU speed and bf16


@functools.lru_cache(maxsize=1)
def cpu() -> dict:
    """This machine's CPU: ``{"name": model name, "flags": [the RELEVANT_FLAGS it has]}`` (Linux /proc/cpuinfo;
    elsewhere the platform's processor string and no flags)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                field, _, value = line.partition(":")
                if field.strip() == "model name" and not flags:
                    name = value.strip()
                elif field.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"name": name, "flags": [f for f in RELEVANT_FLAGS if f in flags]}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine(computed: dict) -> dict:
    """The provenance of a run starting now on this machine with ``computed`` (:meth:`Context.computed`)."""
    import torch

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # pragma: no cover - timm is a requirement
        timm_version = None
    device = computed.get("device", "cpu")
    if device == "cuda" and torch.cuda.is_available():
        name, flags = torch.cuda.get_device_name(), []
    else:
        name, flags = cpu()["name"], cpu()["flags"]
    return {**computed, "device_name": name, "flags": flags, "torch": torch.__version__, "timm": timm_version,
            "load_before": _load(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def finished(provenance: dict | None, wall_s: float) -> dict:
    """``provenance`` completed when the run finishes: load average after, wall time, date."""
    return {**(provenance or {}), "load_after": _load(), "wall_s": round(wall_s, 2),
            "date": time.strftime("%Y-%m-%d")}


def elsewhere(provenance: dict | None, computed: dict, run_config: dict | None = None,
              here_config: dict | None = None) -> list[str]:
    """How a stored run differs from computing it here, in words (empty: reused silently). ``computed`` is
    :meth:`Context.computed` here; ``run_config``/``here_config`` (the stored and the local config) add the
    training split when the run was found by family."""
    prov, out = provenance or {}, []
    if prov.get("device") not in (None, computed.get("device")):
        out.append(f"on {prov['device']}")
    if prov.get("precision") not in (None, computed.get("precision")):
        out.append(f"in {prov['precision']} (here: {computed.get('precision')})")
    if prov.get("threads") not in (None, computed.get("threads")):
        out.append(f"on {count_text(prov['threads'], 'thread')} (here: {computed.get('threads')})")
    if run_config is not None and here_config is not None:
        theirs, ours = (run_config.get("data") or {}).get("train"), (here_config.get("data") or {}).get("train")
        if theirs != ours and theirs is not None:
            out.append(f"trained on {_images(theirs)} training images (here: {_images(ours)})")
    return out


def _images(variant: str | None) -> str:
    return f"{int(variant.split('@')[0]):,}" if variant and variant.split("@")[0].isdigit() else str(variant)


def label(provenance: dict | None, differences: list[str] | None = None) -> str:
    """One line naming where and how a result was computed, e.g. ``"computed in bf16 on cpu (AMD EPYC 9R14,
    avx512_bf16), 2 threads, torch 2.14.1, 2026-12-04"``; prefixed ``"computed elsewhere: "`` with the
    differences when it was not computed as it would be here."""
    prov = provenance or {}
    if not prov:
        return "provenance not recorded"
    where = prov.get("device") or "?"
    if prov.get("device_name"):
        flags = [f for f in prov.get("flags") or () if f in ("avx512_bf16", "amx_bf16")]
        where += f" ({prov['device_name']}{', ' + ', '.join(flags) if flags else ''})"
    parts = [f"computed in {prov.get('precision', '?')} on {where}"]
    if prov.get("threads") is not None:
        parts.append(count_text(prov["threads"], "thread"))
    if prov.get("torch"):
        parts.append(f"torch {prov['torch']}")
    if prov.get("date") or prov.get("started"):
        parts.append(str(prov.get("date") or prov["started"][:10]))
    if prov.get("migrated"):
        parts.append("recorded before provenance (machine details partly unknown)")
    text = ", ".join(parts)
    return f"computed elsewhere ({'; '.join(differences)}): {text}" if differences else text


# ---------------------------------------------------------------------------- migration of older stores
OWN_FIELDS = {"speed": ("device", "threads")}  # kinds whose config has fields of these names: in the old scheme
# they overrode the key's machine fields (SpeedConfig measures on a device at a thread count), so they stay in the key


def rekey(config: dict) -> dict:
    """An old-scheme run config (device, precision used and threads in its key; both splits in ``data``)
    in the current scheme: key (precision policy, the splits read) plus :data:`COMPUTED`."""
    from .keys import reads_train

    old = dict(config)
    own = OWN_FIELDS.get(old.get("kind"), ())  # a kind's own fields of these names (SpeedConfig's) stay in its key
    computed = {"device": old["device"] if "device" in own else old.pop("device", "cpu"),
                "precision": old.get("precision", "fp32"),
                "threads": old["threads"] if "threads" in own else old.pop("threads", None)}
    old["precision"] = "auto" if bool(old.get("bf16", True)) else "fp32"
    data = dict(old.get("data") or {})
    if "train" in data and not reads_train(old):
        data.pop("train")
    old["data"] = data
    return {**old, COMPUTED: computed}


def needs_migration(config: dict) -> bool:
    return COMPUTED not in config and "threads" in config and "device" in config


def migrate_store(path: str, cpu_name: str | None = None, flags: list[str] | None = None) -> dict[str, str]:
    """Re-key every old-scheme run of the store at ``path`` in place (ids, points, blobs, references to other
    runs' ids inside configs and summaries) and record what is known of where it was computed as provenance
    (``cpu_name``/``flags``: the machine that made them, when known; ``migrated`` marks it). Idempotent: runs
    already in the current scheme are left alone. Returns old id -> new id."""
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        rows = con.execute("SELECT id, config, summary, provenance, duration_s, updated FROM runs").fetchall()
        import json

        mapping: dict[str, str] = {}
        configs: dict[str, dict] = {}
        for run_id, text, _summary, _prov, _dur, _upd in rows:
            cfg = json.loads(text)
            if needs_migration(cfg):
                configs[run_id] = rekey(cfg)
        for run_id, text, *_ in rows:  # current-scheme rows written without the lookup columns
            cfg = json.loads(text)
            if run_id not in configs and isinstance(cfg, dict):
                con.execute("UPDATE runs SET key_id=?, family=? WHERE id=? AND key_id IS NULL", (*reuse_ids(cfg), run_id))
        if not configs:
            return {}
        # references first: a config naming another run (omp-vs-ticket's "run") is keyed by the new id
        for _ in range(3):
            mapping = {old: config_id(_replace_ids(cfg, mapping)) for old, cfg in configs.items()}
        con.execute("BEGIN IMMEDIATE")
        con.execute("PRAGMA defer_foreign_keys=ON")
        for run_id, text, summary, prov, duration, updated in rows:
            if run_id not in configs:
                continue
            cfg = _replace_ids(configs[run_id], mapping)
            new_id = mapping[run_id]
            key_id, family = reuse_ids(cfg)
            computed = cfg[COMPUTED]
            provenance = {**computed, "device_name": cpu_name, "flags": flags or [], "migrated": True,
                          "wall_s": None if duration is None else round(duration, 2),
                          "date": time.strftime("%Y-%m-%d", time.localtime(updated))}
            new_summary = None if summary is None else canonical_json(_replace_ids(json.loads(summary), mapping))
            con.execute("UPDATE runs SET id=?, config=?, summary=?, key_id=?, family=?, provenance=? WHERE id=?",
                        (new_id, canonical_json(cfg), new_summary, key_id, family,
                         json.dumps(provenance, sort_keys=True), run_id))
            for table in ("points", "blobs"):
                con.execute(f"UPDATE {table} SET run_id=? WHERE run_id=?", (new_id, run_id))
            con.execute("UPDATE pins SET run_id=? WHERE run_id=?", (new_id, run_id))
        con.execute("COMMIT")
        return mapping
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _replace_ids(obj: Any, mapping: dict[str, str]) -> Any:
    """``obj`` with every string equal to an old run id replaced by its new id (configs and summaries name
    other runs, e.g. omp-vs-ticket's ``run``, a summary's ``run_id``)."""
    if isinstance(obj, dict):
        return {k: _replace_ids(v, mapping) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_ids(v, mapping) for v in obj]
    return mapping.get(obj, obj) if isinstance(obj, str) else obj
