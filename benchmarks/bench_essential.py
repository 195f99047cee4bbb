"""Locating the OMP essential sparsity to within 0.01, end to end: the paper's way against LOTUS's.

Each way runs as its own process from a cold start (imports, model and data loading
included) on the same 2,000 fixed test images, in fp32 so that only the search differs:

(a) the paper's code: dense, then every sparsity 0.01, 0.02, ..., 0.90 (91 evaluations): deep-copy
    the model, torch.nn.utils.prune.global_unstructured (L1Unstructured) over the scoped weights,
    evaluate every image;
(b) ``python -m lotus_core sweep --search scout`` (the dashboard's search) on a fresh results store, so the
    dense accuracy (and its hard-first image order) is computed in the run: bisection on the 0.01 grid over
    the whole range, cut where the two answers cost the same per halving, each point first decided from
    a budget of the dense model's hardest images (twice the wrong images a "below" needs), and only the
    bracket's low end from every image it needs, plus the coarse check past the point.

"On any CPU" (issue 28 section 4): (a) and (b) are measured on this CPU as it is and on a simulated CPU
without bf16, side by side and interleaved (paper, LOTUS, paper, LOTUS, ... with the order swapped each
repeat), each with the load average before and after. The simulation puts a ``sitecustomize.py`` on
``PYTHONPATH`` that, once torch is imported, makes ``torch.ops.mkldnn._is_mkldnn_bf16_supported`` answer False,
so ``core/device.py`` decides as on a CPU without AVX-512 BF16 or AMX (the precision policy ``auto`` picks
fp32; the benchmark records what each process decided and the precision each sweep was computed in). It does
not make fp32 matmuls slower: an AVX2-only CPU also lacks AVX-512 for fp32, so both ways are slower there
per image, and the fixed costs (interpreter, imports, loading) weigh differently. The third CPU, ``avx2``, comes
closer to that: ATen, oneDNN and MKL are each told to use nothing past AVX2 (:data:`AVX2_ONLY`), which also
leaves oneDNN without bf16 kernels.

Every child computes on ``--threads`` threads (``$LOTUS_THREADS``; the paper's loop too) with a private CPU
budget folder, so a LOTUS process of another user on the host never makes a measured one wait for a slot.

``--all-ways`` adds the earlier comparison: the scouted search with the dense accuracy already stored, the
bisection (``--search bisect``) both ways, ``sweep --refine`` (0.1 grid, then bisection), and the peak
resident memory of a scouted sweep against that of one evaluation. Then (unless ``--no-startup``) the
start-up time of CLI commands (median of 3 cold processes each).

Usage: python benchmarks/bench_essential.py [--limit 2000] [--repeats 1] [--threads 2] [--cpus native,no-bf16,avx2]
       [--all-ways] [--no-startup] [--baseline DIR] [--code DIR]
    --baseline DIR  also time the CLI start-up with the lotus_core found in DIR (e.g. an older checkout)
    --code DIR      also run the scouted search with the lotus_core in DIR, interleaved with the others
Figures with their load averages: docs/responsive.md ("Turning point, 15x on any CPU").
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def paper_way(limit: int, eps: float) -> dict:
    """Subprocess entry: the paper's loop (deepcopy, torch global L1 pruning, full fp32 evaluation, every 0.01)."""
    import copy

    from lotus_core.startup import import_vision_stack

    import_vision_stack()  # the same imports as the CLI's, so that only the search differs
    import torch.nn.utils.prune as tprune

    from lotus_core.context import open_context
    from lotus_core.core.device import precision_used
    from lotus_core.pruning.essential import essential_sparsity
    from lotus_core.pruning.scope import scoped_parameters
    from lotus_core.training.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "paper.db")  # torch at $LOTUS_THREADS, as LOTUS computes
        decided = {"auto": precision_used(ctx.device, True), "used": precision_used(ctx.device, False)}
        dense = evaluate(ctx.model, ctx.test, ctx.data_config, limit=limit, bf16=False)
        curve = []
        for i in range(1, 91):
            model = copy.deepcopy(ctx.model)
            modules = dict(model.named_modules())
            targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in scoped_parameters(model)]
            tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=i / 100)
            curve.append((i / 100, evaluate(model, ctx.test, ctx.data_config, limit=limit, bf16=False).accuracy))
            del model
    ess = essential_sparsity(curve, dense.accuracy, eps)
    return {"point": ess.essential_sparsity, "bracket": list(ess.bracket), "evaluations": 1 + len(curve),
            "images": dense.n * (1 + len(curve)), "recovers": ess.recovers, "precision": decided}


def cli_way(extra: list[str], limit: int, eps: float, dense_stored: bool = False, env: dict | None = None,
            code: Path = ROOT) -> dict:
    """Run ``python -m lotus_core sweep ... --json`` as a process on a fresh store; its answer and counts.
    ``dense_stored``: the store already holds the dense accuracy (an untimed ``evaluate --fp32`` first, as after
    any dashboard visit), so the sweep serves it and its evaluations exclude it. ``code``: the checkout whose
    lotus_core runs. ``precision``: the one the sweep was computed in, as its provenance records it."""
    if code != ROOT:
        env = {**(env or os.environ), "PYTHONPATH": os.pathsep.join(
            [*filter(None, [(env or os.environ).get("PYTHONPATH")]), str(code)])}
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "lotus.db")
        if dense_stored:
            run([sys.executable, "-m", "lotus_core", "evaluate", "--limit", str(limit), "--fp32", "--db", db],
                env, code)
        out = run([sys.executable, "-m", "lotus_core", "sweep", "--methods", "omp", "--limit", str(limit), "--eps",
                   str(eps), "--fp32", "--json", "--db", db, *extra], env, code)
    res = json.loads(out["stdout"])
    ess = res["essential"]["omp"]
    dense = 0 if dense_stored else 1
    points = ess["evaluations"] + ess.get("scouts_open", 0)  # points asked: decided ones and scouts left open
    label = str(res.get("provenance", ""))  # "computed in fp32 on cpu (...), 2 threads, ..."
    return {"point": ess["essential_sparsity"], "bracket": ess["bracket"], "recovers": ess["recovers"],
            "evaluations": dense + points, "images": dense * res["dense"]["n"] + ess["images"],
            "decided_early": ess.get("decided_early", 0), "scouts_open": ess.get("scouts_open", 0),
            "search_points": points, "wall": out["wall"], "cpu": out["cpu"],
            "precision": label.split("computed in ", 1)[1].split()[0] if "computed in " in label else "?"}


# A CPU without native bf16, simulated: once torch is imported, oneDNN's probe answers False (an import hook,
# so a process that never imports torch starts exactly as it would without it).
NO_BF16_SITE = '''"""LOTUS benchmarks: simulate a CPU without native bf16 kernels (AVX-512 BF16 / AMX)."""
import importlib.abc
import importlib.machinery
import sys


class _NoBf16(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.ops.mkldnn._is_mkldnn_bf16_supported = lambda: False

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _NoBf16())
'''

DECIDED = ("import json, torch; from lotus_core.core.device import cpu_supports_bf16, precision_used; "
           "cpu = torch.device('cpu'); print(json.dumps({'isa': torch.backends.cpu.get_cpu_capability(), "
           "'bf16_kernels': cpu_supports_bf16(), "
           "'auto': precision_used(cpu, True), 'fp32_flag': precision_used(cpu, False)}))")


# An AVX2-only CPU, as far as the libraries can be told: ATen dispatches its AVX2 kernels, oneDNN and MKL use no
# instruction past AVX2 (so no AVX-512 for fp32 either, and oneDNN's bf16 probe answers False by itself).
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def cpu_envs(names: list[str], threads: int, tmp: Path) -> dict[str, dict]:
    """The environment of every child for each simulated CPU: ``native`` (this CPU as it is), ``no-bf16``
    (:data:`NO_BF16_SITE` first on ``PYTHONPATH``) and ``avx2`` (:data:`AVX2_ONLY`); all on ``threads`` threads
    with a private CPU budget."""
    base = {**os.environ, "LOTUS_THREADS": str(threads), "LOTUS_CPU_BUDGET_DIR": str(tmp / "budget")}
    envs = {}
    for name in names:
        if name == "native":
            envs[name] = base
        elif name == "no-bf16":
            site = tmp / "no_bf16"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(NO_BF16_SITE)
            path = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
            envs[name] = {**base, "PYTHONPATH": os.pathsep.join(path)}
        elif name == "avx2":
            envs[name] = {**base, **AVX2_ONLY}
        else:
            raise SystemExit(f"--cpus: unknown CPU {name!r}; use native, no-bf16 and/or avx2")
    return envs


def load() -> str:
    """The 1-minute load average now."""
    return f"{os.getloadavg()[0]:.1f}"


def any_cpu(args: argparse.Namespace) -> list[dict]:
    """The paper's loop and the scouted search from a fresh store on each CPU of ``--cpus``, interleaved;
    one row per process with its load average before and after."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        envs = cpu_envs(args.cpus.split(","), args.threads, Path(tmp))
        decided = {cpu: json.loads(run([sys.executable, "-c", DECIDED], env)["stdout"]) for cpu, env in envs.items()}
        for r in range(args.repeats):
            for cpu, env in envs.items():
                ways = ["paper", "scout", *(["scout (--code)"] if args.code else [])]
                for way in (ways if r % 2 == 0 else ways[::-1]):
                    before = load()
                    if way == "paper":
                        out = run([sys.executable, __file__, "--paper", "--limit", str(args.limit), "--eps",
                                   str(args.eps)], env)
                        res = {**json.loads(out["stdout"]), "wall": out["wall"], "cpu": out["cpu"]}
                        res["precision"] = res["precision"]["used"]
                    else:
                        res = cli_way(["--search", "scout"], args.limit, args.eps, env=env,
                                      code=args.code if way.endswith("(--code)") else ROOT)
                    rows.append({**res, "way": way, "cpu_kind": cpu, "repeat": r, "decided": decided[cpu],
                                 "load": f"{before} -> {load()}"})
                    print(f"  [{cpu}, repeat {r + 1}] {way}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, "
                          f"{res['point']:.2f} {res['bracket']}, load {rows[-1]['load']}", file=sys.stderr, flush=True)
    return rows


def print_any_cpu(rows: list[dict], args: argparse.Namespace) -> bool:
    """The table of :func:`any_cpu` and its ratios; True when every answer is the paper's."""
    print(f"OMP essential sparsity of the default model to 0.01, {args.limit} test images, eps {args.eps}, "
          f"{args.threads} thread(s), {os.cpu_count()} CPUs; each way one cold process, interleaved\n")
    print("| CPU (device.py decides) | repeat | way | turning point [bracket] | images | computed in | wall (s) | "
          "CPU (s) | load before -> after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["decided"]
        cpu = f"{r['cpu_kind']} (bf16 kernels {'yes' if d['bf16_kernels'] else 'no'}; auto = {d['auto']})"
        answer = f"{r['point']:.2f} [{r['bracket'][0]:.2f}, {r['bracket'][1]}]"
        print(f"| {cpu} | {r['repeat'] + 1} | {r['way']} | {answer} | "
              f"{r['images']:,} | {r['precision']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['load']} |")
    print("\n| CPU | repeat | way | speed-up wall | speed-up CPU |")
    print("|---|---|---|---|---|")
    for (cpu, rep) in dict.fromkeys((r["cpu_kind"], r["repeat"]) for r in rows):
        ways = {r["way"]: r for r in rows if r["cpu_kind"] == cpu and r["repeat"] == rep}
        for way in [w for w in ways if w != "paper"]:
            print(f"| {cpu} | {rep + 1} | {way} | {ways['paper']['wall'] / ways[way]['wall']:.1f}x | "
                  f"{ways['paper']['cpu'] / ways[way]['cpu']:.1f}x |")
    paper = [r for r in rows if r["way"] == "paper"]
    same = all(r["point"] == paper[0]["point"] and r["bracket"] == paper[0]["bracket"] for r in rows)
    print(f"\nidentical answer in every process: {'yes' if same else 'NO'}")
    return same


def run(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Run ``cmd`` in ``cwd`` to completion: stdout, wall time and the CPU time (user + system) it used (s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env or os.environ.copy())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 2):  # 2: a one-line user error, still a measured start-up
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"stdout": proc.stdout, "wall": wall, "cpu": cpu}


def rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(mode: str, limit: int) -> dict:
    """Subprocess entry: resident memory once loaded, and the peak during one evaluation or one sweep (MiB)."""
    from lotus_core.context import open_context
    from lotus_core.pruning.sweep import SweepConfig, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "m.db")
        ctx.evaluate(limit=10)  # load the kernels, so only the working memory of the measured call counts
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        base = rss_mib("VmRSS")
        if mode == "eval":
            ctx.evaluate(limit=limit)
        else:
            run_sweep(ctx, SweepConfig(methods=("omp",), limit=limit, search="scout"))
        return {"base_mib": base, "peak_mib": rss_mib("VmHWM")}


STARTUP = {"--help": ["--help"], "runs": ["runs"], "info": ["info"], "evaluate --limit 10": ["evaluate", "--limit", "10"]}


def startup_times(code_root: Path, base: dict, repeats: int = 3) -> dict[str, float]:
    """Median wall time (s) of each STARTUP command, a cold process each time, with ``code_root``'s lotus_core
    (``base``: the environment otherwise)."""
    env = {**base, "PYTHONPATH": str(code_root)}  # and the cwd, which `python -m` puts first on sys.path
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        env["LOTUS_DB"] = str(Path(tmp) / "startup.db")
        run([sys.executable, "-m", "lotus_core", "evaluate", "--limit", "10"], env, code_root)  # warm the file cache
        for name, argv in STARTUP.items():
            # --no-cache: evaluate --limit 10 really evaluates each time instead of reading the store
            extra = ["--no-cache"] if argv[0] == "evaluate" else []
            times[name] = statistics.median(run([sys.executable, "-m", "lotus_core", *argv, *extra], env,
                                                code_root)["wall"] for _ in range(repeats))
    return times


def all_ways(args: argparse.Namespace, env: dict) -> None:
    """The earlier comparison: every search of ``sweep`` against the paper's loop, and the memory peaks."""
    out = run([sys.executable, __file__, "--paper", "--limit", str(args.limit), "--eps", str(args.eps)], env)
    paper = {**json.loads(out["stdout"]), "wall": out["wall"], "cpu": out["cpu"]}
    scout = cli_way(["--search", "scout"], args.limit, args.eps, env=env)
    served = cli_way(["--search", "scout"], args.limit, args.eps, dense_stored=True, env=env)
    bisect = cli_way(["--search", "bisect"], args.limit, args.eps, env=env)
    bisect_served = cli_way(["--search", "bisect"], args.limit, args.eps, dense_stored=True, env=env)
    refine = cli_way(["--sparsities", "0:0.9:0.1", "--refine"], args.limit, args.eps, env=env)
    print(f"\nAll ways, this CPU as it is (load average {load()} at the end)\n")
    print("| way | turning point [bracket] | evaluations | images evaluated | wall (s) | CPU (s) | "
          "speed-up wall / CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, r in [("paper's code: 0.01 grid, deepcopy + torch prune, every image", paper),
                    ("`sweep --search scout` (bisection on scouts of the hardest images, the bracket decided)", scout),
                    ("the same, the dense accuracy already stored (as after any page visit)", served),
                    ("`sweep --search bisect` (every point decided, hard-first early decisions)", bisect),
                    ("the same, the dense accuracy already stored", bisect_served),
                    ("`sweep --refine` (0.1 grid, then bisection; every image)", refine)]:
        print(f"| {name} | {r['point']:.2f} [{r['bracket'][0]:.2f}, {r['bracket'][1]}] | {r['evaluations']} | "
              f"{r['images']:,} | {r['wall']:.1f} | {r['cpu']:.1f} | "
              f"{paper['wall'] / r['wall']:.1f}x / {paper['cpu'] / r['cpu']:.1f}x |")
    same = all(r["point"] == paper["point"] and r["bracket"] == paper["bracket"]
               for r in (scout, served, bisect, bisect_served, refine))
    print(f"\nidentical answer: {'yes' if same else 'NO'}; of the scouted search's {scout['search_points']} points, "
          f"{scout['scouts_open']} were left open after their scout and {scout['decided_early']} decided early; "
          f"the bisection decided {bisect['decided_early']} of {bisect['search_points']} early; recovers (accuracy "
          f"back within tolerance past the point): paper {paper['recovers']}, scout {scout['recovers']}")
    mem = {m: json.loads(run([sys.executable, __file__, "--probe", m, "--limit", str(args.limit)], env)["stdout"])
           for m in ("eval", "sweep")}
    ev, sw = mem["eval"], mem["sweep"]
    print(f"\nresident memory once loaded {ev['base_mib']:.0f} MiB; peak during one evaluation {ev['peak_mib']:.0f} MiB "
          f"(+{ev['peak_mib'] - ev['base_mib']:.0f}), during a whole scouted sweep {sw['peak_mib']:.0f} MiB "
          f"(+{sw['peak_mib'] - sw['base_mib']:.0f}); sweep/evaluation peak ratio {sw['peak_mib'] / ev['peak_mib']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("LOTUS_THREADS") or 2),
                        help="threads of every way ($LOTUS_THREADS; default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of the any-CPU comparison")
    parser.add_argument("--cpus", default="native,no-bf16", help="native (this CPU), no-bf16 and/or avx2 (simulated)")
    parser.add_argument("--all-ways", action="store_true", help="also every other search and the memory peaks")
    parser.add_argument("--no-startup", action="store_true", help="leave out the CLI start-up times")
    parser.add_argument("--baseline", type=Path, default=None, help="also time start-up with the lotus_core in DIR")
    parser.add_argument("--code", type=Path, default=None,
                        help="also run the scouted search with the lotus_core in DIR (an older checkout), interleaved")
    parser.add_argument("--paper", action="store_true", help=argparse.SUPPRESS)  # subprocess entries
    parser.add_argument("--probe", choices=["eval", "sweep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paper or args.probe:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(paper_way(args.limit, args.eps) if args.paper else memory_probe(args.probe, args.limit)))
        return
    print(f"load average at the start {load()}", file=sys.stderr)
    same = print_any_cpu(any_cpu(args), args)
    with tempfile.TemporaryDirectory() as tmp:
        env = cpu_envs(["native"], args.threads, Path(tmp))["native"]
        if args.all_ways:
            all_ways(args, env)
        if not args.no_startup:
            roots = {"this tree": ROOT, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
            starts = {name: startup_times(path, env) for name, path in roots.items()}
            print(f"\n| command (cold process, median of 3; load {load()} at the end) | "
                  + " | ".join(f"{n} (s)" for n in starts) + " |")
            print("|---|" + "---|" * len(starts))
            for cmd in STARTUP:
                print(f"| `{cmd}` | " + " | ".join(f"{t[cmd]:.2f}" for t in starts.values()) + " |")
    if not same:
        raise SystemExit("the answers differ")


if __name__ == "__main__":
    main()
