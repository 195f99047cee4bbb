"""Chaos benchmark: kill -9 background workers and CLI runs at random moments, restart them, and
check that every run finishes with nothing lost and the numbers of an uninterrupted run.

Each trial runs a tiny lottery-ticket experiment (IMP with rewinding, 8 rounds, a 2-block ViT on
the embedded Fashion-MNIST) in a fresh results store, in one of three ways:

- ``worker``: submitted as a background job; the worker is killed (SIGKILL) after a random number
  of finished rounds and a new worker is started, with no user action on the run;
- ``cli``: ``python -m lotus_core lth`` is killed after a random number of rounds and rerun;
- ``cli+worker``: a CLI run computes while a worker of the same store is started and killed; the
  CLI's run must end done and untouched (no ``interrupted`` status, no error text).

It reports runs finished, units lost (rounds stored before a kill that are missing or changed
afterwards: expected 0), results equal to the uninterrupted run (every round's numbers and mask,
bit for bit), and stuck jobs (runs not done within ``--timeout-s`` of the restart: expected 0).

Bounded and local: ``--trials`` trials, each with a timeout; every process runs on this machine
and talks only to SQLite files in a temporary folder (no sockets, no network).

    PYTHONPATH=. python benchmarks/chaos.py --trials 6 --json
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# A 2-block ViT on 28x28 grayscale, 4x4 patches of 7 px: seconds per LTH run on two CPU cores.
CHAOS_ARCH = dict(model_name="vit_tiny_patch16_224", img_size=28, patch_size=7, in_chans=1, num_classes=10,
                  embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)
# The experiment every trial runs: 8 IMP rounds (20% of the rest each, to 80%) of 40 steps.
LTH = dict(target=0.8, prune_fraction=0.2, steps=40, batch_size=32, lr=1e-3, limit=100, seed=0)
ROUNDS = 9  # round-0 (dense) .. round-8


def make_checkpoint(folder: Path) -> Path:
    """The seeded tiny ViT saved as a safetensors checkpoint (its architecture in the header)."""
    import timm
    import torch

    from lotus_core.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = timm.create_model(CHAOS_ARCH["model_name"], pretrained=False,
                              **{k: v for k, v in CHAOS_ARCH.items() if k != "model_name"})
    model.lotus_arch = dict(CHAOS_ARCH)
    return save_checkpoint(model, folder / "tiny.safetensors")


def child_env(lease_s: float = 2.0, heartbeat_s: float = 0.25) -> dict[str, str]:
    """The environment of every worker and CLI process: embedded data only, offline, one thread,
    short leases (so a killed worker's job is taken over within seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "LOTUS_JOBS_IMMEDIATE"}
    env.update(LOTUS_NO_SYSTEM_DATA="1", LOTUS_OFFLINE="1", LOTUS_THREADS=env.get("LOTUS_THREADS", "1"),
               LOTUS_LEASE_S=str(lease_s), LOTUS_HEARTBEAT_S=str(heartbeat_s),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def lth_argv(checkpoint: Path, db: Path, lth: dict = LTH) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in lth.items()]
    return [sys.executable, "-m", "lotus_core", "lth", "--model", str(checkpoint), "--db", str(db), *flags, "--json"]


def start_cli(checkpoint: Path, db: Path, env: dict[str, str], lth: dict = LTH) -> subprocess.Popen:
    return subprocess.Popen(lth_argv(checkpoint, db, lth), env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def start_worker(db: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lotus_core", "worker", "--db", str(db)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def submit_lth(checkpoint: Path, db: Path, env: dict[str, str], lth: dict = LTH) -> str:
    """Queue the LTH experiment on the store's job queue, as the dashboard does; returns its run id."""
    code = ("import json, sys\n"
            "from lotus_core.context import open_context\n"
            "from lotus_core.lottery.lth import LTHConfig\n"
            "from lotus_core import jobs\n"
            f"ctx = open_context({str(checkpoint)!r}, db={str(db)!r})\n"
            f"spec = jobs.context_spec(ctx, model={str(checkpoint)!r})\n"
            f"print(jobs.submit(spec, 'lth', LTHConfig(**{lth!r}), ctx))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_until(predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.02) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every_s)
    return predicate()


@functools.lru_cache(maxsize=64)
def _store(db: str):
    from lotus_core.results.store import Store

    return Store(db)


def lth_run(db: Path) -> dict | None:
    """The store's LTH run (there is one per trial), or None before it is recorded."""
    if not db.is_file():
        return None
    runs = _store(str(db)).runs(kind="lth")
    return None if runs.empty else runs.iloc[0].to_dict()


WALL_TIMES = ("elapsed_s", "seconds")  # point fields that measure time, not results
RESUMABLE_STATE = ("state.safetensors",)  # a fine-tune's weights and AdamW moments, overwritten every epoch: not a unit


def units(db: Path, run_id: str) -> dict[str, str]:
    """Every finished unit of a run, as a fingerprint of its numbers (points without wall times) and
    its blobs (masks, a fine-tune's resumable state), bit for bit."""
    store = _store(str(db))
    out = {}
    for key, point in store.points(run_id).items():
        out[key] = json.dumps({k: v for k, v in point.items() if k not in WALL_TIMES}, sort_keys=True)
    for name in store.blob_names(run_id):
        if name not in RESUMABLE_STATE:
            out[name] = hashlib.sha256(store.get_blob(run_id, name)).hexdigest()
    return out


def rounds_done(db: Path) -> int:
    run = lth_run(db)
    return 0 if run is None else len([k for k in units(db, run["id"]) if k.startswith("round-")])


def reference(folder: Path, checkpoint: Path, lth: dict = LTH) -> tuple[str, dict[str, str]]:
    """The uninterrupted run, computed by the CLI: its id and its units."""
    db = folder / "reference.db"
    proc = subprocess.run(lth_argv(checkpoint, db, lth), env=child_env(), cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"reference run failed: {proc.stderr.strip()[-300:]}")
    run_id = json.loads(proc.stdout)["run_id"]
    return run_id, units(db, run_id)


def trial(kind: str, folder: Path, checkpoint: Path, ref: dict[str, str], rng: random.Random,
          timeout_s: float) -> dict:
    """One kill-and-restart trial (see the module docstring); returns what it observed."""
    db = folder / f"{kind}-{rng.randrange(10**9)}.db"
    env = child_env()
    kill_after = rng.randint(1, ROUNDS - 2)  # finished rounds before the kill
    procs: list[subprocess.Popen] = []
    try:
        if kind == "worker":
            submit_lth(checkpoint, db, env)
            procs.append(start_worker(db, env))
        else:
            procs.append(start_cli(checkpoint, db, env))
        reached = wait_until(lambda: rounds_done(db) >= kill_after, timeout_s)
        if kind == "cli+worker":
            procs.append(start_worker(db, env))
            time.sleep(rng.uniform(0.5, 3.0))
            kill9(procs[-1])  # the worker dies; the CLI's run must not notice
            before = {}
        else:
            run_id = lth_run(db)["id"]
            before = units(db, run_id)
            kill9(procs[0])
            procs.append(start_worker(db, env) if kind == "worker" else start_cli(checkpoint, db, env))
        finished = wait_until(lambda: (lth_run(db) or {}).get("status") == "done", timeout_s, every_s=0.1)
        run = lth_run(db) or {}
        after = units(db, run["id"]) if run else {}
        return {"kind": kind, "kill_after_rounds": kill_after, "reached_kill_point": reached,
                "finished": finished, "status": run.get("status"), "error": run.get("error"),
                "units_lost": sum(1 for k, v in before.items() if after.get(k) != v),
                "equal": after == ref}
    finally:
        for p in procs:
            kill9(p)


# Other CLI runs killed with SIGKILL and rerun: (stored kind, its flags, how many units make it done). The
# fine-tune's checkpoint file is compared too (its id hashes the file: a resumed run must write the same bytes).
CLI_RUNS = {
    "sweep": ("sweep", ["--methods", "omp,random", "--sparsities", "0:0.9:0.1", "--limit", "100"], 20),
    "finetune": ("finetune", ["--epochs", "4", "--train-limit", "64", "--batch-size", "16", "--limit", "50", "--fp32"],
                 4),
}


def kind_run(db: Path, kind: str) -> dict | None:
    if not db.is_file():
        return None
    runs = _store(str(db)).runs(kind=kind)
    return None if runs.empty else runs.iloc[0].to_dict()


def cli_kill_trial(name: str, folder: Path, checkpoint: Path, rng: random.Random, timeout_s: float) -> dict:
    """``lotus <kind>`` of :data:`CLI_RUNS` killed (SIGKILL) after a random number of stored units, rerun, and
    compared with an uninterrupted run of its own: units lost, equal, and (fine-tune) the same checkpoint bytes."""
    kind, flags, total = CLI_RUNS[name]

    def argv(db: Path) -> list[str]:
        return [sys.executable, "-m", "lotus_core", kind, "--model", str(checkpoint), "--db", str(db), *flags, "--json"]

    ref_db, db = folder / f"{name}-ref.db", folder / f"{name}-{rng.randrange(10**9)}.db"
    ref = subprocess.run(argv(ref_db), env=child_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    ref_out = json.loads(ref.stdout)
    ref_units = units(ref_db, kind_run(ref_db, kind)["id"])
    kill_after = rng.randint(1, total - 1)
    proc = subprocess.Popen(argv(db), env=child_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reached = wait_until(lambda: len(units(db, (kind_run(db, kind) or {"id": ""})["id"])) > kill_after, timeout_s)
        before = units(db, kind_run(db, kind)["id"])
    finally:
        kill9(proc)
    again = subprocess.run(argv(db), env=child_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    run = kind_run(db, kind) or {}
    after = units(db, run["id"]) if run else {}
    out = json.loads(again.stdout) if again.returncode == 0 else {}
    same_file = None
    if "checkpoint" in ref_out and "checkpoint" in out:
        same_file = Path(ref_out["checkpoint"]).read_bytes() == Path(out["checkpoint"]).read_bytes()
    return {"kind": f"{name}-cli", "kill_after_units": kill_after, "reached_kill_point": reached,
            "finished": run.get("status") == "done", "status": run.get("status"), "error": run.get("error"),
            "units_lost": sum(1 for k, v in before.items() if after.get(k) != v), "equal": after == ref_units,
            "differs": sorted(k for k in set(after) | set(ref_units) if after.get(k) != ref_units.get(k))[:5],
            **({"same_checkpoint_bytes": same_file} if same_file is not None else {})}


def full_disk_trial(folder: Path, checkpoint: Path, ref: dict[str, str], free_kb: int | None = None,
                    timeout_s: float = 180.0) -> dict:
    """The store on a small tmpfs filled to ``free_kb`` KB free: the LTH CLI must stop with one line, its run
    marked ``interrupted`` (not left ``running``), the store intact; once the filler is deleted (space freed) a
    rerun resumes and ends equal to the uninterrupted run. ``free_kb`` defaults to 60% of what the uninterrupted run
    wrote (its store and write-ahead log), so the disk fills mid-run. Needs ``mount`` (root in a container); else
    skipped."""
    import sqlite3

    mnt = folder / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        return {"kind": "full-disk", "skipped": "cannot mount a tmpfs here (needs root)"}
    try:
        db = mnt / "lotus.db"
        from lotus_core.results.store import Store

        Store(db)
        if free_kb is None:
            written = sum(p.stat().st_size for p in folder.glob("reference.db*"))
            free_kb = max(32, int(0.6 * written / 1024))
        filler = mnt / "filler"
        stat = os.statvfs(mnt)
        filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free_kb * 1024))
        proc = subprocess.run(lth_argv(checkpoint, db), env=child_env(), cwd=REPO, capture_output=True, text=True,
                              timeout=timeout_s)
        lines = proc.stderr.strip().splitlines()
        first = lth_run(db) or {}
        con = sqlite3.connect(db)
        intact = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        before = units(db, first["id"]) if first else {}
        filler.unlink()  # space freed
        again = subprocess.run(lth_argv(checkpoint, db), env=child_env(), cwd=REPO, capture_output=True, text=True,
                               timeout=timeout_s)
        run = lth_run(db) or {}
        after = units(db, run["id"]) if run else {}
        return {"kind": "full-disk", "free_kb": free_kb, "exit": proc.returncode, "last_line": lines[-1] if lines else "",
                "traceback": "Traceback" in proc.stderr, "status_when_full": first.get("status"),
                "integrity_ok": intact, "rerun_exit": again.returncode, "finished": run.get("status") == "done",
                "units_lost": sum(1 for k, v in before.items() if after.get(k) != v), "equal": after == ref}
    finally:
        _store.cache_clear()
        subprocess.run(["umount", str(mnt)], capture_output=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="kill-and-restart trials (kinds in turn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    parser.add_argument("--timeout-s", type=float, default=180.0, help="per phase of a trial")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--full-disk", action="store_true", help="also a trial with the store on a full tmpfs")
    parser.add_argument("--cli-runs", default="", help="also kill -9 these CLI runs and rerun them: sweep,finetune")
    args = parser.parse_args(argv)
    if not 1 <= args.trials <= 100:
        parser.error("--trials must be in 1..100")
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lotus-chaos-") as tmp:
        folder = Path(tmp)
        checkpoint = make_checkpoint(folder)
        _, ref = reference(folder, checkpoint)
        kinds = ["worker", "cli", "cli+worker"]
        trials = [trial(kinds[i % len(kinds)], folder, checkpoint, ref, rng, args.timeout_s)
                  for i in range(args.trials)]
        disk = full_disk_trial(folder, checkpoint, ref, timeout_s=args.timeout_s) if args.full_disk else None
        trials += [cli_kill_trial(name, folder, checkpoint, rng, args.timeout_s)
                   for name in args.cli_runs.split(",") if name]
    report = {"trials": len(trials), "kills": len(trials),
              "runs_finished": sum(t["finished"] for t in trials),
              "units_lost": sum(t["units_lost"] for t in trials),
              "equal_to_uninterrupted": sum(t["equal"] for t in trials),
              "stuck_jobs": sum(not t["finished"] for t in trials),
              "errors_left": sum(bool(t["error"]) for t in trials),
              "full_disk": disk, "wall_s": round(time.perf_counter() - t0, 1), "details": trials}
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if key != "details":
                print(f"{key}: {value}")
    return report


if __name__ == "__main__":
    main()
