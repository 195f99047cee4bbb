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
import json, runpy, sys
sys.argv = ["lotus", *json.loads(sys.argv[1])]
try:
    runpy.run_module("lotus_core", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}), file=sys.stderr)
""" % (HEAVY,)


def run_cli(argv: list[str], db: Path) -> tuple[dict, str, str]:
    env = {**os.environ, "LOTUS_DB": str(db), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    *err, probe = proc.stderr.strip().splitlines()
    return json.loads(probe), proc.stdout, "\n".join(err)


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


def test_the_benchmarks_cpu_without_bf16_makes_device_py_decide_fp32_and_imports_nothing(tmp_path):
    """benchmarks/bench_essential.py simulates a CPU without native bf16 with a sitecustomize.py whose import
    hook makes oneDNN's probe answer False once torch is imported: device.py's policy 'auto' then picks fp32,
    and a process that never imports torch (the light commands above) starts as it would without the hook."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_essential", ROOT / "benchmarks" / "bench_essential.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    env = bench.cpu_envs(["no-bf16"], 1, tmp_path)["no-bf16"]
    decided = subprocess.run([sys.executable, "-c", bench.DECIDED], capture_output=True, text=True, env=env, cwd=ROOT,
                             timeout=300)
    assert json.loads(decided.stdout) == {"bf16_kernels": False, "auto": "fp32", "fp32_flag": "fp32"}
    light = subprocess.run([sys.executable, "-c", "import sys, lotus_core.cli, sitecustomize; "
                            "print(sitecustomize.__file__, 'torch' in sys.modules)"],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert light.stdout.split() == [str(tmp_path / "no_bf16" / "sitecustomize.py"), "False"]
