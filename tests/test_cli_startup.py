"""Commands that need no model start without importing torch, timm or torchvision (checked in a fresh
process's sys.modules, not timed); model commands still do what they did."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "timm", "torchvision")
PROBE = """
import atexit, json, runpy, sys
sys.argv = ["lotus", *json.loads(sys.argv[1])]
atexit.register(lambda: print(json.dumps([m for m in %r if m in sys.modules]), file=sys.stderr, flush=True))
runpy.run_module("lotus_core", run_name="__main__")
""" % (HEAVY,)


def run_cli(argv: list[str], db: Path) -> tuple[dict, str, str]:
    """``python -m lotus_core ARGV`` in a fresh process: its exit code and the heavy modules it imported (printed by
    an atexit handler: the process ends without teardown, after its atexit handlers), stdout, stderr."""
    env = {**os.environ, "LOTUS_DB": str(db), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    *err, probe = proc.stderr.strip().splitlines()
    return {"code": proc.returncode, "heavy": json.loads(probe)}, proc.stdout, "\n".join(err)


def light_commands(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "c.csv").write_text("sparsity,accuracy\n0,0.9\n0.1,0.9\n0.2,0.895\n0.3,0.85\n")
    return {"help": ["--help"], "runs": ["runs", "--json"],
            "export": ["export", "nosuch", "--out", str(tmp_path / "o.csv")],
            "essential": ["essential", "--curve", str(tmp_path / "c.csv"), "--json"], "delete": ["delete", "nosuch"],
            "annotate": ["annotate", "nosuch", "--name", "x"], "diff": ["diff", "nosuch", "other"]}


@pytest.mark.parametrize("name", ["help", "runs", "export", "essential", "delete", "annotate", "diff"])
def test_commands_without_a_model_import_no_torch_timm_or_torchvision(tmp_path, name):
    if name in ("runs", "export", "delete", "annotate", "diff"):  # read-only commands open an existing store (a missing one is refused in one line)
        from lotus_core.results.store import Store

        Store(tmp_path / "r.db")
    probe, out, err = run_cli(light_commands(tmp_path)[name], tmp_path / "r.db")
    assert probe["heavy"] == []
    if name == "help":
        assert probe["code"] == 0 and "sweep" in out and "essential" in out
    elif name == "runs":
        assert probe["code"] == 0 and json.loads(out) == {"runs": []}
    elif name == "essential":
        assert json.loads(out)["bracket"] == [0.2, 0.3]
    else:  # a run that does not exist: one line saying what to do, exit 2
        assert probe["code"] == 2 and len(err.splitlines()) == 1 and "nosuch" in err


def test_a_model_command_still_parses_its_registry_options(tmp_path):
    probe, out, err = run_cli(["prune", "--method", "nosuch"], tmp_path / "r.db")
    assert probe["code"] == 2 and "invalid choice: 'nosuch'" in err and "omp" in err


def test_evaluate_needs_no_pandas_plotly_or_streamlit(tmp_path):
    code = ("import sys; from lotus_core.cli import main; main(['evaluate', '--limit', '10', '--json']); "
            "print([m for m in ('pandas', 'plotly', 'streamlit', 'captum', 'huey') if m in sys.modules])")
    env = {**os.environ, "LOTUS_DB": str(tmp_path / "r.db"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300).stdout.splitlines()
    assert json.loads(out[0])["n"] == 10 and out[1] == "[]"


def test_a_held_store_keeps_its_wal_between_short_connections(tmp_path):
    """SQLite checkpoints a WAL store and deletes its WAL when the last connection closes (two fsyncs and two
    unlinks per store call); Store.held() keeps one idle connection so that happens once, on exit."""
    from lotus_core.results.store import Store

    store, wal = Store(tmp_path / "s.db"), tmp_path / "s.db-wal"
    store.start_run("probe", {"i": 0})
    assert not wal.exists()  # no connection left: checkpointed and deleted at once
    with store.held():
        first = store.start_run("probe", {"i": 1})
        assert wal.exists() and wal.stat().st_size > 0  # the write waits in the WAL, nothing synced twice
        store.start_run("probe", {"i": 2})
        assert store.get_run(first)["kind"] == "probe"  # readers see it as always
    assert not wal.exists()  # checkpointed into the main file once, when the held connection closed
    assert [Store(tmp_path / "s.db").get_run(store.start_run("probe", {"i": i}))["config"] for i in range(3)] == \
        [{"i": 0}, {"i": 1}, {"i": 2}]


def test_a_held_store_that_cannot_be_opened_is_left_to_the_calls_inside(tmp_path):
    from lotus_core.results.store import Store

    store = Store(tmp_path / "s.db")
    store.path = tmp_path / "missing" / "s.db"  # a folder that is not there: sqlite cannot open it
    with store.held():
        pass  # no error of its own: the calls inside say what is wrong in their one line


def test_a_model_command_holds_its_store_for_the_whole_command(tmp_path, monkeypatch):
    from lotus_core import cli
    from lotus_core.results.store import Store

    held, real = [], Store.held

    def spy(self):
        held.append(self.path)
        return real(self)

    monkeypatch.setattr(Store, "held", spy)
    assert cli.main(["evaluate", "--limit", "10", "--json", "--db", str(tmp_path / "r.db")]) == 0
    assert held == [tmp_path / "r.db"]
    assert cli.main(["runs", "--json", "--db", str(tmp_path / "r.db")]) == 0
    assert held == [tmp_path / "r.db"]  # a command without a model opens no Context and holds nothing


def bench_essential():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_essential", ROOT / "benchmarks" / "bench_essential.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_benchmarks_avx2_only_cpu_dispatches_avx2_kernels_and_has_no_bf16(tmp_path):
    """bench_essential's third CPU: ATen, oneDNN and MKL told to use nothing past AVX2 (any x86-64 CPU LOTUS runs
    on has AVX2): ATen reports AVX2 and device.py decides fp32 as on such a CPU."""
    bench = bench_essential()
    env = bench.cpu_envs(["avx2"], 1, tmp_path)["avx2"]
    decided = subprocess.run([sys.executable, "-c", bench.DECIDED], capture_output=True, text=True, env=env, cwd=ROOT,
                             timeout=300)
    assert json.loads(decided.stdout) == {"isa": "AVX2", "bf16_kernels": False, "auto": "fp32", "fp32_flag": "fp32"}


def test_the_benchmarks_cpu_without_bf16_makes_device_py_decide_fp32_and_imports_nothing(tmp_path):
    """benchmarks/bench_essential.py simulates a CPU without native bf16 with a sitecustomize.py whose import
    hook makes oneDNN's probe answer False once torch is imported: device.py's policy 'auto' then picks fp32,
    and a process that never imports torch (the light commands above) starts as it would without the hook."""
    import torch

    bench = bench_essential()
    env = bench.cpu_envs(["no-bf16"], 1, tmp_path)["no-bf16"]
    decided = subprocess.run([sys.executable, "-c", bench.DECIDED], capture_output=True, text=True, env=env, cwd=ROOT,
                             timeout=300)
    assert json.loads(decided.stdout) == {"isa": torch.backends.cpu.get_cpu_capability(), "bf16_kernels": False,
                                          "auto": "fp32", "fp32_flag": "fp32"}
    light = subprocess.run([sys.executable, "-c", "import sys, lotus_core.cli, sitecustomize; "
                            "print(sitecustomize.__file__, 'torch' in sys.modules)"],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert light.stdout.split() == [str(tmp_path / "no_bf16" / "sitecustomize.py"), "False"]


def test_a_model_command_never_imports_torch_dynamo_and_leaves_torch_as_it_was(tmp_path):
    """torchvision's roi_align and timm's torch.compiler.disable decorators would import TorchDynamo (about 1 s),
    as would timm's weight init on the meta device when a checkpoint is checked; a model command imports neither,
    and after start-up sys.modules and torch.compiler are as torch left them."""
    code = ("import atexit, json, runpy, sys; sys.argv = ['lotus', 'info', '--json']\n"
            "def state():\n"
            "    import torch.compiler\n"
            "    print(json.dumps(['torch._dynamo' in sys.modules, 'torch._dynamo.utils' in sys.modules, "
            "torch.compiler.disable.__module__, 'timm' in sys.modules, 'torchvision' in sys.modules]))\n"
            "atexit.register(state)\n"
            "runpy.run_module('lotus_core', run_name='__main__')\n")
    env = {**os.environ, "LOTUS_DB": str(tmp_path / "r.db"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and json.loads(proc.stdout.splitlines()[0])["model"].startswith("default@")
    assert json.loads(proc.stdout.splitlines()[-1]) == [False, False, "torch.compiler", True, True]


def test_after_the_lean_start_torch_dynamo_imports_and_the_deferred_functions_are_the_real_ones():
    code = ("import sys, json; from lotus_core.startup import import_vision_stack; import_vision_stack(); "
            "import torch, timm.layers.typing as tt; ra = sys.modules['torchvision.ops.roi_align']; "
            "stub = ra.is_compile_supported('cpu'); import torch._dynamo.utils as du; "
            "real = du.is_compile_supported('cpu'); "
            "f = tt.disable_compiler(lambda x: x * 3); y = f(torch.ones(2)).tolist(); "
            "g = torch.compile(lambda x: x + 1, backend='eager')(torch.ones(2)).tolist(); "
            "print(json.dumps([stub, real, y, g, du.__file__.endswith('utils.py')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert json.loads(out.stdout.splitlines()[-1]) == [True, True, [3.0, 3.0], [2.0, 2.0], True], out.stderr[-2000:]


def test_a_deferred_disable_applies_the_real_one_once_on_the_first_call():
    from lotus_core.startup import _deferred_disable

    applied = []

    def real(fn, recursive, **kwargs):
        applied.append((fn.__name__, recursive, kwargs))
        return lambda *a, **k: ("disabled", fn(*a, **k))

    def double(x):
        return 2 * x

    wrapped = _deferred_disable(real, double)
    assert applied == [] and wrapped.__name__ == "double"
    assert wrapped(4) == ("disabled", 8) and wrapped(5) == ("disabled", 10)
    assert applied == [("double", True, {})]
    later = _deferred_disable(real, recursive=False, reason="why")(double)
    assert later(1) == ("disabled", 2) and applied[-1] == ("double", False, {"reason": "why"})


def test_a_command_ends_without_teardown_after_flushing_its_output_and_running_atexit(tmp_path):
    """exit_now: stdout and stderr flushed, atexit handlers run (in order), the code kept; a live non-daemon thread
    makes it exit the usual way, which joins that thread."""
    code = ("import atexit, sys, threading, time; from lotus_core.startup import exit_now\n"
            "atexit.register(lambda: print('second atexit', flush=True))\n"
            "atexit.register(lambda: print('first atexit', flush=True))\n"
            "sys.stdout.write('unflushed out'); sys.stderr.write('unflushed err')\n"
            "if sys.argv[1] == 'thread':\n"
            "    threading.Thread(target=lambda: (time.sleep(0.5), print(' thread joined', end=''))).start()\n"
            "exit_now(3)\n"
            "print('never')\n")
    for mode, tail in (("alone", ""), ("thread", " thread joined")):
        proc = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, cwd=ROOT, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 3 and proc.stderr == "unflushed err"
        assert proc.stdout == f"unflushed out{tail}first atexit\nsecond atexit\n"


def test_a_reader_that_goes_away_ends_the_command_quietly_with_141(tmp_path):
    """``lotus runs | head -0``: the pipe's reader is gone before the output is written; no traceback, exit 141."""
    from lotus_core.results.store import Store

    Store(tmp_path / "r.db")
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "lotus_core", "runs", "--db", str(tmp_path / "r.db")],
                              stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")
