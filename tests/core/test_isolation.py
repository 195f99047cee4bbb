"""Sessions never break each other: no process-global mutation (issue 25, section 1).

The Report's patch section traced the model with ``torch.fx`` (timm ``AttentionExtract(method="fx")``),
which patches ``nn.Module.__call__`` process-wide while it traces: a sweep's forward pass in another
thread failed with ``module is not installed as a submodule``. Here a sweep and patch scoring with
seeded new heads run at once in two threads over the same shared model, and each result must equal
its run alone; and the package may call none of torch's process-global setters outside
:mod:`lotus_core.core.isolation`.
"""
from __future__ import annotations

import ast
import copy
import threading
from pathlib import Path

import pytest
import torch

from lotus_core.context import Context
from lotus_core.core.isolation import seeded
from lotus_core.data.images import to_model_input
from lotus_core.models.arch import data_config
from lotus_core.models.heads import new_head
from lotus_core.patches import ScoreOptions, score_patches
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from lotus_core.results.store import Store

from tests.conftest import make_tiny_imageset

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ROOT / "lotus_core" / "core" / "isolation.py"  # the one documented place

# calls that change state every thread of the process sees (the thread count is core/device.py's)
GLOBAL_SETTERS = {
    "torch.manual_seed", "torch.seed", "torch.random.manual_seed", "torch.random.seed", "torch.set_rng_state",
    "torch.random.set_rng_state", "torch.random.fork_rng", "torch.cuda.manual_seed", "torch.cuda.manual_seed_all",
    "torch.cuda.set_rng_state", "torch.cuda.set_rng_state_all", "torch.random.default_generator.manual_seed",
    "np.random.seed", "numpy.random.seed", "random.seed",
    "torch.set_default_dtype", "torch.set_default_tensor_type", "torch.set_default_device",
    "torch.set_autocast_enabled", "torch.set_autocast_cpu_enabled", "torch.set_autocast_gpu_dtype",
    "torch.set_autocast_cpu_dtype", "torch.set_autocast_dtype",
    "set_fused_attn", "timm.layers.set_fused_attn", "torch.fx.symbolic_trace", "symbolic_trace",
}
GLOBAL_MODULES = ("torch.fx", "timm.models._features_fx", "torchvision.models.feature_extraction")


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def global_mutations(source: str) -> list[str]:
    """The process-global setters ``source`` calls or imports (``name:line``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in GLOBAL_SETTERS:
                found.append(f"{name}:{node.lineno}")
            if any(k.arg == "method" and isinstance(k.value, ast.Constant) and k.value.value == "fx"
                   for k in node.keywords):
                found.append(f"method='fx':{node.lineno}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}:{node.lineno}" for a in node.names if a.name.startswith(GLOBAL_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(GLOBAL_MODULES) or (node.module == "torch" and any(a.name == "fx" for a in node.names)):
                found.append(f"from {node.module}:{node.lineno}")
            found += [f"{a.name}:{node.lineno}" for a in node.names if a.name in GLOBAL_SETTERS]
    return sorted(found, key=lambda hit: int(hit.rsplit(":", 1)[1]))


def test_the_scanner_finds_each_kind_of_global_mutation():
    source = ("import torch, numpy as np\nimport torch.fx\nfrom timm.layers import set_fused_attn\n"
              "torch.manual_seed(0)\nnp.random.seed(1)\ntorch.set_default_dtype(torch.float64)\n"
              "with torch.random.fork_rng():\n    pass\nAttentionExtract(m, method='fx')\n"
              "torch.Generator().manual_seed(0)\n")  # a private generator is fine
    assert global_mutations(source) == ["import torch.fx:2", "set_fused_attn:3", "torch.manual_seed:4",
                                        "np.random.seed:5", "torch.set_default_dtype:6", "torch.random.fork_rng:7",
                                        "method='fx':9"]


def test_the_package_changes_no_process_global_state_outside_the_isolation_module():
    files = [p for folder in ("lotus_core", "app", "pages") for p in sorted((ROOT / folder).rglob("*.py"))]
    found = {str(p.relative_to(ROOT)): hits for p in files if p != ALLOWED
             for hits in [global_mutations(p.read_text())] if hits}
    assert found == {}
    assert [hit.rsplit(":", 1)[0] for hit in global_mutations(ALLOWED.read_text())] == [
        "torch.random.fork_rng", "torch.random.default_generator.manual_seed", "torch.cuda.manual_seed_all"]


def test_seeded_draws_equal_a_fresh_seed_and_leave_the_global_stream_alone():
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        inside = torch.rand(4)
    assert torch.equal(inside, torch.rand(4, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(torch.rand(3), expected_after)  # the stream outside continues as if nothing happened


def _sweep(model: torch.nn.Module, db: Path) -> list[tuple]:
    ctx = Context(model, model.lotus_id, "tiny", data_config(model), make_tiny_imageset(200, seed=0), Store(db),
                  _train=make_tiny_imageset(400, seed=1, split="train"))
    frame = run_sweep(ctx, SweepConfig(methods=("omp", "random"), sparsities=(0.2, 0.5, 0.8, 0.9), limit=100)).frame
    return sorted(zip(frame["method"], frame["sparsity"], frame["accuracy"]))


def _patches(model: torch.nn.Module, x: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """What the Report's patch section computes (CLS attention), plus rollout, on the shared model and on a
    copy with a seeded new head (timm initialises it from the global generator)."""
    fresh = new_head(copy.deepcopy(model), 10, seed=seed)
    return [score_patches(model, x, "cls", ScoreOptions()), score_patches(model, x, "rollout", ScoreOptions()),
            fresh.head.weight.detach().clone(), score_patches(fresh, x, "cls", ScoreOptions())]


def test_a_sweep_and_patch_scoring_in_two_threads_each_equal_their_run_alone(trained_tiny_vit, tmp_path):
    model = trained_tiny_vit  # shared by both threads, as the dashboard shares its cached model
    x = to_model_input(make_tiny_imageset(8, seed=3).images, data_config(model))
    alone_sweep = _sweep(model, tmp_path / "alone.db")
    alone_patches = [_patches(model, x, seed) for seed in range(3)]

    errors: list[BaseException] = []
    swept: list = []
    scored: list = []
    done = threading.Event()

    def sweep_thread():
        try:
            swept.append(_sweep(model, tmp_path / "together.db"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    def patch_thread():
        try:
            rounds = 0
            while not done.is_set() or rounds < 3:
                scored.append((rounds % 3, _patches(model, x, rounds % 3)))
                rounds += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=sweep_thread), threading.Thread(target=patch_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and swept == [alone_sweep]
    assert len(scored) >= 3
    for seed, result in scored:
        assert all(torch.equal(a, b) for a, b in zip(result, alone_patches[seed]))


@pytest.mark.parametrize("seed", [0, 5])
def test_a_seeded_new_head_is_the_same_whatever_another_thread_seeds_meanwhile(tiny_vit, seed):
    alone = new_head(copy.deepcopy(tiny_vit), 7, seed=seed).head.weight.detach().clone()
    stop = threading.Event()

    def reseed():
        while not stop.is_set():
            with seeded(99):
                torch.rand(1000)

    other = threading.Thread(target=reseed)
    other.start()
    try:
        heads = [new_head(copy.deepcopy(tiny_vit), 7, seed=seed).head.weight.detach().clone() for _ in range(20)]
    finally:
        stop.set()
        other.join()
    assert all(torch.equal(h, alone) for h in heads)


def test_a_timing_at_the_process_thread_count_never_touches_torchs_process_wide_setting(monkeypatch, tiny_vit):
    """Every measurement the dashboard and its worker start times at the process's own thread count: torch's
    process-wide setting is then never written (another session's forward would see it change)."""
    import torch

    from lotus_core.speed import measure

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    x = torch.zeros(2, 1, 28, 28)
    with torch.no_grad():
        measure.interleaved({"dense": tiny_vit}, x, threads=torch.get_num_threads(), rounds=2, min_run_time=0.002,
                            warmup=1)
        measure.time_forward(tiny_vit, x, threads=torch.get_num_threads(), min_run_time=0.002, warmup=1)
    here = torch.get_num_threads()
    assert set(calls) <= {here}  # torch.utils.benchmark's Timer re-asserts the same count; nothing else is written
    calls.clear()
    with measure.timing_threads(here + 1):  # another count (the CLI's --threads): set for the timing, then restored
        pass
    assert calls == [here + 1, here]
