"""One registration per experiment kind, one status enum, and the job queue kept out of the algorithms."""
import subprocess
import sys
from pathlib import Path

import pytest

from lotus_core.core.errors import LotusError
from lotus_core.lottery.lth import LTHConfig, run_lth
from lotus_core import jobs
from lotus_core.results.registry import experiments, get_experiment
from lotus_core.results.store import ACTIVE, RunStatus
from lotus_core.results.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def test_every_stored_kind_is_registered_once_beside_its_experiment():
    specs = experiments()
    assert set(specs) == {"evaluate", "prune-eval", "prune-decide", "prune-prefix", "sweep", "sensitivity", "lth", "issp", "lth-control",
                          "lottery-train", "fidelity", "omp-vs-ticket", "omp-vs-one-shot", "speed", "speed-accuracy",
                          "finetune", "core-ticket", "instability", "lota", "rigl", "supermask", "ticket-transfer"}
    assert {k for k, s in specs.items() if s.job} == {"sweep", "sensitivity", "lth", "issp", "lth-control",
                                                      "lottery-train", "speed", "fidelity",
                                                      "finetune", "core-ticket", "instability", "lota", "rigl",
                                                      "supermask", "ticket-transfer"}
    assert {k for k, s in specs.items() if s.curve} == {"sweep", "sensitivity", "lth", "issp", "lottery-train",
                                                        "fidelity", "finetune", "ticket-transfer"}
    assert all(s.headline is not None for s in specs.values())
    assert (specs["lth"].config_cls, specs["lth"].fn) == (LTHConfig, run_lth)
    for kind, spec in specs.items():
        assert spec.name == kind and (spec.fn is None) == (spec.config_cls is None), kind
    with pytest.raises(LotusError, match="unknown job kind .omp-vs-ticket.; choose one of core-ticket, fidelity, finetune, instability, issp, lota, lottery-train, lth, lth-control, rigl, sensitivity, speed, supermask, sweep, ticket-transfer"):
        get_experiment("omp-vs-ticket", job=True)


def test_only_the_jobs_module_imports_the_job_queue():
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "lotus_core").rglob("*.py")
                       if "huey" in p.read_text() and ("import huey" in p.read_text() or "from huey" in p.read_text()))
    assert importers == ["lotus_core/jobs.py"]
    code = ("import sys, lotus_core.pruning.sweep, lotus_core.lottery.lth, lotus_core.lottery.issp, "
            "lotus_core.lottery.controls, lotus_core.patches.ticket_training, lotus_core.patches.fidelity; "
            "from lotus_core.results.registry import experiments; experiments(); print('huey' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_statuses_are_one_enum_documented_in_the_schema():
    assert [s.value for s in RunStatus] == ["queued", "running", "done", "failed", "cancelling", "cancelled",
                                            "interrupted"]
    documented = SCHEMA.split("status TEXT NOT NULL,")[1].split("\n")[0]
    assert all(s.value in documented for s in RunStatus)
    assert ACTIVE == ("queued", "running", "cancelling") and RunStatus.DONE == "done"


def test_a_job_kind_rebuilds_its_nested_config_from_the_queued_dict(tiny_ctx, monkeypatch):
    """The worker gets a plain dict (asdict of the config); from_mapping rebuilds nested configs (a control's LTH)."""
    from lotus_core.lottery.controls import ControlConfig
    from lotus_core.results.runs import run_experiment, run_id_for

    lth = LTHConfig(target=0.3, prune_fraction=0.3, steps=2, lr=3e-3, batch_size=16, limit=20)
    run_experiment(tiny_ctx, "lth", lth, run_lth)
    monkeypatch.setattr(jobs, "_context", lambda spec: tiny_ctx)
    cfg = ControlConfig(lth, 1, "shuffle", 0)
    rid = jobs.submit(jobs.context_spec(tiny_ctx, model="tiny"), "lth-control", cfg, tiny_ctx)
    run = tiny_ctx.store.get_run(rid)
    assert rid == run_id_for(tiny_ctx, "lth-control", cfg) and run["status"] == RunStatus.DONE
    assert run["summary"]["round"] == 1 and run["config"]["lth"]["steps"] == 2


def test_every_registering_module_is_listed_in_kinds():
    """Registration is found by explicit import (lotus_core/kinds.py), never by searching source text: a module
    that registers a kind but is missing from the list would leave the worker refusing that kind."""
    import ast

    registering = set()
    for path in (ROOT / "lotus_core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "register_experiment"]
        if calls and path.name != "registry.py":
            parts = path.relative_to(ROOT).with_suffix("").parts
            registering.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    kinds = ast.parse((ROOT / "lotus_core" / "kinds.py").read_text(encoding="utf-8"))
    listed = {".".join(["lotus_core", *([node.module] if node.module else []), alias.name]) for node in kinds.body
              if isinstance(node, ast.ImportFrom) and node.level == 1 for alias in node.names}
    assert registering == listed
