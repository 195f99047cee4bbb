"""Can a speed measurement be trusted on a busy machine? The same measurement, idle and under load.

Measures masked-50% (zeros in dense kernels: truly about 1x) and channels-50% (half the MLP hidden
channels removed: truly faster) against dense on the default model at batch 32, with the Speed
experiment itself (:func:`lotus_core.speed.run.run_speed`: interleaved rounds, the median per-round
speed-up with its 95% bootstrap interval, the unreliable mark), ``--repeats`` times on the machine as
it is ("idle"), then ``--repeats`` times while two busy processes (pure-Python loops) compete for the
cores ("loaded"). Each measurement is its own take in a fresh results store.

Targets (issue 24): every masked result is within [0.9, 1.1]x or marked unreliable; no channels result
is reported slower than dense (median < 1) without the mark; the idle and loaded intervals overlap for
every result not marked unreliable (each reliable idle interval against each reliable loaded one).
Prints one line per measurement (with the load averages before and after) and the verdicts; the same
verdicts are also given for the interval rule alone (as on a machine whose load average stays under its
cores) and for every result (no mark: what the mark caught).

Usage: python benchmarks/bench_speed_noise.py [--repeats 10] [--rounds 7] [--min-run-time 0.5] [--threads 2]
       [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lotus_core.context import open_context  # noqa: E402
from lotus_core.speed import measure  # noqa: E402
from lotus_core.speed.reliability import MAX_SPREAD  # noqa: E402
from lotus_core.speed.run import SpeedConfig, run_speed  # noqa: E402

BUSY = "while True: pass"  # one busy process: a core's worth of pure-Python work


def measure_once(ctx, phase: str, take: int, args) -> list[dict]:
    config = SpeedConfig(methods=("masked", "channels"), batch_sizes=(32,), best_batch=False, sparsities=(0.5,),
                         ratios=(0.5,), limit=100, min_run_time=args.min_run_time, rounds=args.rounds,
                         threads=args.threads, take=take)
    t0 = time.perf_counter()
    result = run_speed(ctx, config)
    took = time.perf_counter() - t0
    out = []
    for row in result.rows():
        if row["method"] == "dense":
            continue
        out.append({"phase": phase, "take": take, "method": row["method"], "speedup": row["speedup"],
                    "low": row["speedup_low"], "high": row["speedup_high"], "unreliable": row.get("unreliable"),
                    "load_before": row["load_before"], "load_after": row["load_after"], "seconds": round(took, 1)})
    return out


def overlap(a: dict, b: dict) -> bool:
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def too_wide(r: dict) -> bool:
    """The interval rule alone (what the mark says on a machine whose load average stays under its cores)."""
    return r["high"] - r["low"] > MAX_SPREAD * r["speedup"]


def verdicts(rows: list[dict], rule: str = "mark") -> dict:
    """The targets over the results that ``rule`` trusts: ``mark`` (not marked unreliable), ``interval`` (the
    interval rule alone, ignoring the load average), ``none`` (every result)."""
    doubt = {"mark": lambda r: bool(r["unreliable"]), "interval": too_wide, "none": lambda r: False}[rule]
    trusted = [r for r in rows if not doubt(r)]
    masked = [r for r in trusted if r["method"] == "masked"]
    channels = [r for r in trusted if r["method"] == "channels"]
    pairs = bad_pairs = 0
    for method in ("masked", "channels"):
        idle = [r for r in trusted if r["method"] == method and r["phase"] == "idle"]
        loaded = [r for r in trusted if r["method"] == method and r["phase"] == "loaded"]
        for a in idle:
            for b in loaded:
                pairs += 1
                bad_pairs += not overlap(a, b)
    return {"trusted": len(trusted), "of": len(rows),
            "masked outside [0.9, 1.1]": sum(not 0.9 <= r["speedup"] <= 1.1 for r in masked),
            "channels slower than dense": sum(r["speedup"] < 1 for r in channels),
            "idle/loaded pairs": pairs, "pairs not overlapping": bad_pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write every measurement to this file")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="lotus-noise-")
    ctx = open_context(db=Path(tmp) / "noise.db")
    load = measure.machine_load()
    print(f"CPU {measure.cpu_model()}, {load.cores} cores, {args.threads} threads, {args.rounds} rounds, "
          f"{args.min_run_time:g} s per configuration; load average now {load.load}", flush=True)
    rows: list[dict] = []
    take = 0
    for phase in ("idle", "loaded"):
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)] if phase == "loaded" else []
        try:
            if busy:
                time.sleep(5)  # let them start
            for _ in range(args.repeats):
                take += 1
                got = measure_once(ctx, phase, take, args)
                rows += got
                print("  ".join(f"{phase:6} take {r['take']:2} {r['method']:8} {r['speedup']:.2f}x "
                                f"[{r['low']:.2f}, {r['high']:.2f}] load {r['load_before']}->{r['load_after']} "
                                f"{'UNRELIABLE: ' + r['unreliable'] if r['unreliable'] else 'reliable'}" for r in got),
                      flush=True)
        finally:
            for p in busy:  # only the processes this script started
                p.kill()
                p.wait()
    print("with the unreliable mark:        ", verdicts(rows))
    print("the interval rule alone (no load):", verdicts(rows, "interval"))
    print("ignoring the mark:               ", verdicts(rows, "none"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
