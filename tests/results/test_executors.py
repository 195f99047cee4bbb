"""The executor seam: the same stored results whether units run locally or as Ray tasks.

Ray tests share one local 2-CPU cluster (the session fixture ``ray_cluster``); tests that
do not ask for it never start Ray.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from lotus_core.core.errors import LotusError
from lotus_core.pruning.sensitivity import SensitivityConfig, run_sensitivity
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from lotus_core.pruning.sweep import grid as sweep_grid  # the grid driver, which sends point_unit
from lotus_core.results.executors import get_executor, ray_executor
from lotus_core.core.executor import ExecutorConfig
from lotus_core.results.runs import run_id_for
from lotus_core.results.store import Store

ROOT = Path(__file__).resolve().parents[2]
RAY = ExecutorConfig("ray")
SWEEP = SweepConfig(methods=("omp", "random"), sparsities=(0.2, 0.5, 0.8), limit=50)


def on(ctx, tmp_path, name: str, executor: ExecutorConfig = RAY):
    """``ctx`` with its own store under ``name`` and the given executor."""
    return dataclasses.replace(ctx, store=Store(tmp_path / f"{name}.db"), executor=executor)


def stored(ctx, kind: str, config) -> tuple[dict, dict]:
    """A run's points and the summaries of the reusable per-point results it wrote."""
    points = ctx.store.points(run_id_for(ctx, kind, config))
    runs = ctx.store.runs(kind="prune-eval")
    return points, {json.dumps(c, sort_keys=True): s for c, s in zip(runs["config"], runs["summary"])}


def recording(fn, path: Path, delay: float = 0.0):
    """``fn`` that appends each unit it computes to ``path`` (works inside Ray workers)."""
    def unit(state, u):
        time.sleep(delay)
        with open(path, "a") as f:
            f.write(json.dumps(u) + "\n")
        return fn(state, u)
    return unit


def killing(fn, marker: Path, victim=None):
    """``fn`` whose worker process is SIGKILLed: once overall (first unit to claim ``marker``), or on
    every attempt at unit ``victim``."""
    def unit(state, u):
        if victim is not None and tuple(u)[:2] == tuple(victim):  # a unit is (method, sparsity, begun)
            os.kill(os.getpid(), signal.SIGKILL)
        if victim is None:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                os.kill(os.getpid(), signal.SIGKILL)
            except FileExistsError:
                pass
        return fn(state, u)
    return unit


def test_the_local_executor_never_imports_ray(tiny_ctx, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # any `import ray` would now fail
    result = run_sweep(tiny_ctx, SWEEP)
    assert len(result.frame) == 6 and tiny_ctx.executor == ExecutorConfig()


def test_sweeps_through_ray_store_what_the_local_executor_stores(trained_tiny_ctx, tmp_path, ray_cluster):
    configs = [SWEEP, SweepConfig(methods=("omp", "random"), limit=50, eps=0.05, refine=True, stop_at_drop=True)]
    local, ray = on(trained_tiny_ctx, tmp_path, "local", ExecutorConfig()), on(trained_tiny_ctx, tmp_path, "ray")
    for config in configs:
        a, b = run_sweep(local, config), run_sweep(ray, config)
        assert a.frame.equals(b.frame) and a.essential == b.essential
        (points_a, evals_a), (points_b, evals_b) = stored(local, "sweep", config), stored(ray, "sweep", config)
        assert points_a == points_b and evals_a == {k: evals_b[k] for k in evals_a}
    # Ray evaluated grid points past a drop while the drop was computed: kept as reusable results, off the curve
    cut = {m: max(p["sparsity"] for p in points_b.values() if p["method"] == m and not p["refined"])
           for m in configs[1].methods}
    assert all(evals_b[k]["sparsity"] > cut[evals_b[k]["method"]] for k in set(evals_b) - set(evals_a))
    # stop-at-drop cut each curve at its first drop, in grid order, whatever order the units arrived in
    short = run_sweep(ray, configs[1]).frame
    grid = short[(short["method"] == "random") & ~short["refined"]]
    assert (grid["accuracy"].iloc[:-1] >= a.dense["accuracy"] - 0.05).all()
    assert grid["accuracy"].iloc[-1] < a.dense["accuracy"] - 0.05


def test_a_sensitivity_grid_through_ray_equals_the_local_one(tiny_ctx, tmp_path, ray_cluster):
    config = SensitivityConfig(sparsities=(0.5, 0.9), limit=50)
    local, ray = on(tiny_ctx, tmp_path, "local", ExecutorConfig()), on(tiny_ctx, tmp_path, "ray")
    a, b = run_sensitivity(local, config), run_sensitivity(ray, config)
    assert a.equals(b) and a.shape == (8, 2)
    assert local.store.points(run_id_for(local, "sensitivity", config)) == \
        ray.store.points(run_id_for(ray, "sensitivity", config))


def test_a_killed_worker_is_retried_or_reported_as_a_failed_unit(tiny_ctx, tmp_path, ray_cluster, monkeypatch):
    local = on(tiny_ctx, tmp_path, "local", ExecutorConfig())
    run_sweep(local, SWEEP)
    expected = stored(local, "sweep", SWEEP)[0]
    real = sweep_grid.point_unit
    # one worker dies mid-task: Ray runs its unit again and the sweep completes unchanged
    monkeypatch.setattr(sweep_grid, "point_unit", killing(real, tmp_path / "killed"))
    retried = on(tiny_ctx, tmp_path, "retried", dataclasses.replace(RAY, max_retries=1))
    run_sweep(retried, SWEEP)
    assert (tmp_path / "killed").exists() and stored(retried, "sweep", SWEEP)[0] == expected
    # a unit whose worker dies on every attempt fails alone, with its error, after max_retries
    monkeypatch.setattr(sweep_grid, "point_unit", killing(real, tmp_path / "unused", victim=("random", 0.5)))
    failing = on(tiny_ctx, tmp_path, "failing", dataclasses.replace(RAY, max_retries=0))
    with pytest.raises(LotusError, match=r"^1 unit\(s\) failed \(random@0\.5000: WorkerCrashedError.*the 5 others "
                                         r"are stored, rerun to retry the failed ones$"):
        run_sweep(failing, SWEEP)
    run = failing.store.get_run(run_id_for(failing, "sweep", SWEEP))
    assert run["status"] == "failed" and "random@0.5000" in run["error"]
    assert sorted(failing.store.points(run["id"])) == sorted(set(expected) - {"random@0.5000"})
    monkeypatch.setattr(sweep_grid, "point_unit", real)
    run_sweep(failing, SWEEP)  # the rerun computes the failed unit only
    assert stored(failing, "sweep", SWEEP)[0] == expected


DRIVER = """
import sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)  # as the test process (conftest): the thread count is part of the keys
from lotus_core.context import Context
from lotus_core.models.arch import data_config
from lotus_core.pruning import sweep as sweep_mod
from lotus_core.pruning.sweep import grid as sweep_grid
from lotus_core.core.executor import ExecutorConfig
from lotus_core.results.store import Store
from tests.conftest import make_tiny_imageset, make_tiny_vit
from tests.results.test_executors import SWEEP, recording
from pathlib import Path

model = make_tiny_vit(0)
ctx = Context(model, model.lotus_id, "tiny", data_config(model), make_tiny_imageset(200, seed=0), Store({db!r}),
              _train=make_tiny_imageset(400, seed=1, split="train"),
              executor=ExecutorConfig("ray", address={address!r}))
sweep_grid.point_unit = recording(sweep_grid.point_unit, Path({log!r}), delay=1.0)
sweep_mod.run_sweep(ctx, SWEEP)
"""


def test_a_killed_driver_resumes_without_recomputing_stored_units(tiny_ctx, tmp_path, ray_cluster, monkeypatch):
    """A second driver process joins the cluster, is SIGKILLed after two units arrived; a rerun
    submits only the units that were not stored."""
    db, log = tmp_path / "killed.db", tmp_path / "units.log"
    script = DRIVER.format(root=str(ROOT), db=str(db), address=ray_cluster, log=str(log))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctx = dataclasses.replace(tiny_ctx, store=Store(db), executor=RAY)
    run_id, deadline = run_id_for(ctx, "sweep", SWEEP), time.monotonic() + 240
    while len(ctx.store.points(run_id)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = ctx.store.points(run_id)
    assert 2 <= len(kept) < 6, proc.stderr.read().decode()[-2000:]
    assert ctx.store.get_run(run_id)["status"] == "running"  # killed: nobody recorded an end
    rerun = tmp_path / "rerun.log"
    monkeypatch.setattr(sweep_grid, "point_unit", recording(sweep_grid.point_unit, rerun))
    result = run_sweep(ctx, SWEEP)
    computed = {(u[0], u[1]) for u in map(json.loads, rerun.read_text().splitlines())}  # (method, sparsity, begun)
    assert computed == {(m, s) for m in SWEEP.methods for s in SWEEP.sparsities} - \
        {(p["method"], p["sparsity"]) for p in kept.values()}
    after = ctx.store.points(run_id)
    assert all(after[k] == v for k, v in kept.items()) and len(after) == 6
    expected = run_sweep(on(tiny_ctx, tmp_path, "local", ExecutorConfig()), SWEEP)
    assert result.frame.equals(expected.frame)


def test_unusable_clusters_are_one_line_errors(monkeypatch):
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        monkeypatch.setattr(ray_executor.importlib.util, "find_spec", lambda name: object())  # as if grpcio were there
        with pytest.raises(LotusError, match=rf"^cannot reach the Ray cluster at {address} \(.*\); start it with"):
            ray_executor.connect(ExecutorConfig("ray", address=address))
    monkeypatch.setattr(ray_executor.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LotusError, match="^ray:// addresses need Ray Client: pip install the grpcio"):
        ray_executor.connect(ExecutorConfig("ray", address="ray://127.0.0.1:1"))
    with pytest.raises(LotusError, match="is not auto, HOST:PORT"):
        ray_executor.connect(ExecutorConfig("ray", address="nowhere"))


def test_a_version_mismatch_is_one_line(monkeypatch):
    import ray
    from ray._private.utils import check_version_info

    def init(**kwargs):  # what Ray raises when the cluster runs another version
        check_version_info({"ray_version": "2.9.0", "python_version": "3.9.1"}, "Ray Client")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(LotusError) as err:
        ray_executor.connect(ExecutorConfig("ray", address="auto"))
    text = str(err.value)
    assert "\n" not in text and text.startswith("the Ray cluster at auto runs another Ray or Python version")
    assert "Ray: 2.9.0 Python: 3.9.1" in text and text.endswith("install ray==2.60.0 and the same Python on the "
                                                                   "driver and every node")


def test_resources_no_node_has_are_refused(ray_cluster):
    info = get_executor(RAY).resources()
    assert info["executor"] == "ray" and info["resources"]["CPU"] == 2.0 and info["resources"]["GPU"] == 0.0
    with pytest.raises(LotusError, match=r"^--gpus-per-task 0.5 asks for GPUs but the local Ray cluster has 0; "):
        get_executor(dataclasses.replace(RAY, gpus_per_task=0.5)).resources()
    with pytest.raises(LotusError, match=r"^--cpus-per-task 4 is more than the 2 CPUs of the local Ray cluster$"):
        get_executor(dataclasses.replace(RAY, cpus_per_task=4)).resources()


@settings(max_examples=30, deadline=None)
@given(gpus=st.floats(min_value=0, max_value=64, allow_nan=False), cpus=st.floats(min_value=0.01, max_value=256))
def test_executor_settings_come_from_the_environment_and_flags_win(gpus, cpus):
    env = {"LOTUS_EXECUTOR": "ray", "LOTUS_RAY_ADDRESS": "auto", "LOTUS_GPUS_PER_TASK": repr(gpus),
           "LOTUS_CPUS_PER_TASK": repr(cpus)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert ExecutorConfig.from_env() == ExecutorConfig("ray", "auto", gpus, cpus)
        assert ExecutorConfig.from_env(cpus_per_task=2.0) == ExecutorConfig("ray", "auto", gpus, 2.0)
        assert ExecutorConfig.from_env(kind="local") == ExecutorConfig("local", "auto", gpus, cpus)  # env: ray's own
        with pytest.raises(LotusError, match="^--ray-address, --gpus-per-task apply only to Ray: add --executor ray"):
            ExecutorConfig.from_env(kind="local", address="auto", gpus_per_task=gpus)
        mp.setenv("LOTUS_GPUS_PER_TASK", repr(-gpus - 0.5))
        with pytest.raises(LotusError, match="must be 0 or more"):
            ExecutorConfig.from_env()
        mp.setenv("LOTUS_GPUS_PER_TASK", "half")
        with pytest.raises(LotusError, match="LOTUS_GPUS_PER_TASK must be a number, got 'half'"):
            ExecutorConfig.from_env()


@pytest.mark.parametrize("retries", [-1, -5, 1.5, True])
def test_a_negative_or_fractional_retry_count_is_refused_in_one_line(retries):
    """A Ray unit is retried ``max_retries`` times: a count below 0 (or not a whole number) means nothing, so it is
    refused before any executor starts (the check once stood after a ``return`` and never ran)."""
    with pytest.raises(LotusError, match=r"^max retries .* must be a whole number, 0 or more$") as err:
        get_executor(ExecutorConfig("ray", max_retries=retries))
    assert "\n" not in str(err.value)
    for good in (0, 2):
        assert ExecutorConfig("ray", max_retries=good).check() is None
    assert get_executor(ExecutorConfig("local", max_retries=0)).config.max_retries == 0


def test_fidelity_scorers_and_issp_denoisers_through_ray_equal_the_local_ones(tiny_ctx, tmp_path, ray_cluster):
    from lotus_core.lottery.issp import ISSPConfig, run_issp
    from lotus_core.patches.fidelity import FidelityConfig, run_fidelity
    from lotus_core.results.runs import run_experiment
    from tests.lottery.test_lth import assert_same_run

    local, ray = on(tiny_ctx, tmp_path, "local", ExecutorConfig()), on(tiny_ctx, tmp_path, "ray")
    fid = FidelityConfig(scorers=("cls", "rollout", "random"), limit=20, steps=4)
    # evaluation-only units: identical curves, scores and agreement
    assert run_experiment(local, "fidelity", fid, run_fidelity) == run_experiment(ray, "fidelity", fid, run_fidelity)
    rid = run_id_for(local, "fidelity", fid)
    assert local.store.points(rid) == ray.store.points(rid)
    assert all(local.store.get_blob(rid, n) == ray.store.get_blob(rid, n) for n in local.store.blob_names(rid))
    # training units with the same seeds on the same device type: the same soups and masks, bit for bit
    cfg = ISSPConfig(target=0.5, per_round=0.3, denoisers=3, lookahead_steps=3, finetune_steps=2, lr=3e-3,
                     batch_size=32, limit=50)
    run_experiment(local, "issp", cfg, run_issp), run_experiment(ray, "issp", cfg, run_issp)
    rid = run_id_for(local, "issp", cfg)
    assert_same_run(local.store, rid, ray.store, rid)
    assert [local.store.get_blob(rid, n) == ray.store.get_blob(rid, n) for n in local.store.blob_names(rid)] == \
        [True] * 4  # masks and soups of both rounds


def test_soup_sweep_fractions_and_lottery_training_arms_on_ray_give_the_local_results(tiny_ctx, tmp_path,
                                                                                      ray_cluster):
    from lotus_core.lottery.issp import ISSPConfig, data_fraction_sweep
    from lotus_core.patches.ticket_training import LotteryTrainConfig, run_lottery_train
    from lotus_core.results.runs import run_experiment

    cfg = ISSPConfig(target=0.3, per_round=0.3, denoisers=2, lookahead_steps=2, finetune_steps=1, batch_size=32,
                     limit=50)
    local, ray = on(tiny_ctx, tmp_path, "local", ExecutorConfig()), on(tiny_ctx, tmp_path, "ray")
    a, b = data_fraction_sweep(local, cfg, (0.1, 1.0)), data_fraction_sweep(ray, cfg, (0.1, 1.0))
    assert a.drop(columns="train_time_s").equals(b.drop(columns="train_time_s"))
    assert list(b["data_fraction"]) == [0.1, 1.0] and b["run_id"].nunique() == 2
    assert set(ray.store.runs(kind="issp")["status"]) == {"done"}
    # lottery training: the two arms of each epoch are units; same seeds, same weights bit for bit
    lt = LotteryTrainConfig(epochs=2, steps_per_epoch=2, batch_size=8, fraction=0.05, limit=50)
    run_experiment(local, "lottery-train", lt, run_lottery_train), run_experiment(ray, "lottery-train", lt,
                                                                                   run_lottery_train)
    rid = run_id_for(local, "lottery-train", lt)
    strip = lambda points: {k: {f: v for f, v in p.items() if not f.endswith("_s")} for k, p in points.items()}  # noqa: E731
    assert strip(local.store.points(rid)) == strip(ray.store.points(rid))
    names = local.store.blob_names(rid)
    assert sum("-epoch-" in n for n in names) == 4  # both arms' weights after each epoch, with init and the tickets
    assert all(local.store.get_blob(rid, n) == ray.store.get_blob(rid, n) for n in names)


def test_a_ray_unit_reserves_the_threads_it_computes_on_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("LOTUS_THREADS", raising=False)
    assert ExecutorConfig("ray").cpus == 2.0  # DEFAULT_THREADS: a 16-core node runs 8 units, not 16 on 2 threads each
    monkeypatch.setenv("LOTUS_THREADS", "4")
    assert ExecutorConfig("ray").cpus == 4.0 and ExecutorConfig("ray", cpus_per_task=1.5).cpus == 1.5
    assert ExecutorConfig.from_env(kind="ray").cpus_per_task is None  # not fixed when the config is made


def test_several_lth_runs_and_their_controls_submitted_together_on_ray_store_the_local_results_bit_for_bit(
        tiny_ctx, tmp_path, ray_cluster):
    from lotus_core.lottery.controls import ControlConfig, run_controls
    from lotus_core.lottery.lth import LTHConfig, run_lths
    from tests.lottery.test_lth import assert_same_run

    base = LTHConfig(target=0.4, prune_fraction=0.3, steps=3, lr=3e-3, batch_size=32, limit=40)
    configs = [dataclasses.replace(base, seed=0), dataclasses.replace(base, seed=1),
               dataclasses.replace(base, rewind="step:2")]
    local, ray = on(tiny_ctx, tmp_path, "local", ExecutorConfig()), on(tiny_ctx, tmp_path, "ray")
    a, b = run_lths(local, configs), run_lths(ray, configs)  # each round of each run one Ray task
    assert [s["run_id"] for s in a] == [s["run_id"] for s in b] and len({s["run_id"] for s in a}) == 3
    for summary in a:
        assert_same_run(local.store, summary["run_id"], ray.store, summary["run_id"])
        names = local.store.blob_names(summary["run_id"])
        assert all(local.store.get_blob(summary["run_id"], n) == ray.store.get_blob(summary["run_id"], n) for n in names)
    assert "rewind.safetensors" in ray.store.blob_names(b[2]["run_id"])  # the step:2 weights came back from the task
    # controls of those tickets (the step:2 one rewinds to the weights the task sent back): one Ray task each
    controls = [ControlConfig(configs[0], 1, "reinit"), ControlConfig(configs[0], 1, "shuffle", seed=3),
                ControlConfig(configs[2], 1, "shuffle")]
    a, b = run_controls(local, controls), run_controls(ray, controls)
    assert a == b and len({s["run_id"] for s in a}) == 3 and [s["control"] for s in b] == ["reinit", "shuffle", "shuffle"]
    assert [s["ticket_accuracy"] for s in b] == [ray.store.get_point(run_id_for(ray, "lth", c.lth), "round-1")["accuracy"]
                                                for c in controls]
    assert all(local.store.get_blob(s["run_id"], "mask.safetensors") == ray.store.get_blob(s["run_id"], "mask.safetensors")
               is not None for s in a)


MULTI_NODE = """
import json, sys
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)  # as the test process (conftest): the thread count is part of the keys
import ray
from ray.cluster_utils import Cluster
from lotus_core.context import Context
from lotus_core.models.arch import data_config
from lotus_core.pruning import sweep as sweep_mod
from lotus_core.core.executor import ExecutorConfig
from lotus_core.results.executors import get_executor
from lotus_core.results.store import Store
from tests.conftest import make_tiny_imageset, make_tiny_vit
from tests.results.test_executors import SWEEP

cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1, "include_dashboard": False}})
cluster.add_node(num_cpus=1)  # a second raylet: a node of its own, as on a second machine
cluster.wait_for_nodes()
config = ExecutorConfig("ray", address=cluster.address, cpus_per_task=1)
model = make_tiny_vit(0)
ctx = Context(model, model.lotus_id, "tiny", data_config(model), make_tiny_imageset(200, seed=0), Store({db!r}),
              _train=make_tiny_imageset(400, seed=1, split="train"), executor=config)
unit = sweep_mod.point_unit

def where(state, u):  # the unit, and the node that computed it
    return {{"node": ray.get_runtime_context().get_node_id(), "result": unit(state, u)}}

pool = get_executor(config).pool(sweep_mod.point_state, ctx, SWEEP)
nodes = [o.result["node"] for o in pool.map(where, {{str(i): ("omp", s) for i, s in enumerate((0.2, 0.5, 0.8) * 2)}})]
info = get_executor(config).resources()
pool.close()
sweep_mod.run_sweep(ctx, SWEEP)  # the real sweep, stored by this driver
print(json.dumps({{"nodes": len(set(nodes)), "units": len(nodes), "info_nodes": info["nodes"],
                  "cpus": info["resources"]["CPU"]}}))
ray.shutdown()  # the driver leaves first: a cluster refuses to remove the node its driver is connected to
cluster.shutdown()
"""


def test_a_sweep_on_a_two_node_cluster_runs_on_both_nodes_and_stores_the_local_results(tiny_ctx, tmp_path):
    """The same code on a cluster: a head and a second node (two raylets, one CPU each), the driver joining by
    address. Units run on both nodes, and the stored sweep equals the local executor's."""
    db = tmp_path / "cluster.db"
    script = MULTI_NODE.format(root=str(ROOT), db=str(db))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"nodes": 2, "units": 6, "info_nodes": 2, "cpus": 2.0}
    cluster_ctx = dataclasses.replace(tiny_ctx, store=Store(db))
    local = on(tiny_ctx, tmp_path, "local", ExecutorConfig())
    expected = run_sweep(local, SWEEP)
    assert stored(cluster_ctx, "sweep", SWEEP)[0] == stored(local, "sweep", SWEEP)[0]
    assert run_sweep(cluster_ctx, SWEEP).frame.equals(expected.frame)  # served from the cluster's store
