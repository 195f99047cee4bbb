"""The Speed feature: sparse kernels compute what the masked model does, structural pruning removes
exactly what it says, token reduction with nothing to remove is the model itself, FLOPs are the
analytic matmul count, exports load back and match, and a method that cannot run says why."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from lotus_core.cli import main
from lotus_core.core.errors import LotusError
from lotus_core.models.loading import load_model
from lotus_core.pruning import prune
from lotus_core.speed import METHODS, measure, sparse, structural, tokens
from lotus_core.speed.export import export, onnx_max_diff
from lotus_core.speed.run import SpeedConfig, pareto, run_speed
from lotus_core.speed.variants import Variants
from tests.conftest import make_tiny_vit

X = torch.Generator().manual_seed(0)


def batch(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=25, deadline=None)
@given(out_f=st.integers(1, 24), in_f=st.integers(1, 24), rows=st.integers(1, 9), sparsity=st.floats(0.0, 0.99),
       bias=st.booleans(), seed=st.integers(0, 1000))
def test_a_csr_linear_equals_the_dense_masked_linear(out_f, in_f, rows, sparsity, bias, seed):
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(in_f, out_f, bias=bias)
    keep = torch.rand(out_f, in_f, generator=g) >= sparsity
    x = torch.randn(2, rows, in_f, generator=g)
    with torch.no_grad():
        want = nn.functional.linear(x, lin.weight * keep, lin.bias)
        got = sparse.CSRLinear(lin, keep)(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


def test_the_csr_model_equals_the_masked_model_and_stores_only_nonzeros(tiny_vit):
    mask = prune(tiny_vit, "omp", 0.7)
    csr = sparse.to_csr(tiny_vit, mask)
    x = batch()
    with torch.no_grad():
        assert torch.allclose(csr(x), mask.apply(tiny_vit)(x), atol=1e-5, rtol=0)
    linears = [m for m in csr.modules() if isinstance(m, sparse.CSRLinear)]
    assert len(linears) == 4 * len(tiny_vit.blocks)  # qkv, proj, fc1, fc2 of every block
    assert sum(m.weight.values().numel() for m in linears) == mask.numel() - mask.num_pruned()
    assert measure.count_params(csr) == measure.count_params(tiny_vit) - mask.num_pruned()


@pytest.mark.parametrize("kind", structural.KINDS)
def test_structural_pruning_at_zero_leaves_the_outputs_identical(tiny_vit, kind):
    pruned = structural.prune_structure(tiny_vit, kind, 0.0)
    x = batch()
    with torch.no_grad():
        assert torch.equal(pruned(x), tiny_vit(x))
    assert structural.structure(pruned) == structural.structure(tiny_vit)


def test_half_the_mlp_channels_halves_those_parameters_exactly_and_keeps_the_shapes(tiny_vit):
    pruned = structural.prune_structure(tiny_vit, "channels", 0.5)
    x = batch()
    with torch.no_grad():
        assert pruned(x).shape == tiny_vit(x).shape == (4, 10)
    for old, new in zip(tiny_vit.blocks, pruned.blocks):
        assert new.mlp.fc1.out_features == old.mlp.fc1.out_features // 2 == 16
        mlp_hidden = lambda b: b.mlp.fc1.weight.numel() + b.mlp.fc1.bias.numel() + b.mlp.fc2.weight.numel()  # noqa: E731
        assert 2 * mlp_hidden(new) == mlp_hidden(old)
        assert new.mlp.fc2.bias.shape == old.mlp.fc2.bias.shape  # the residual width stays
        assert new.attn.qkv.weight.shape == old.attn.qkv.weight.shape
    removed = sum(b.mlp.fc1.out_features for b in tiny_vit.blocks) // 2 * (16 + 1 + 16)
    assert measure.count_params(pruned) == measure.count_params(tiny_vit) - removed


@pytest.mark.parametrize("importance", structural.IMPORTANCES)
def test_removing_heads_removes_whole_heads_of_the_same_width(tiny_vit, tiny_ctx, importance):
    calib = Variants(tiny_ctx, torch.device("cpu")).calib
    pruned = structural.prune_structure(tiny_vit, "heads", 0.5, importance, calib)
    for block in pruned.blocks:
        assert (block.attn.num_heads, block.attn.head_dim) == (1, 8)
        assert block.attn.qkv.weight.shape == (3 * 8, 16) and block.attn.proj.weight.shape == (16, 8)
    with torch.no_grad():
        assert pruned(batch()).shape == (4, 10)
    assert pruned.lotus_arch["num_heads"] == 1 and pruned.lotus_arch["attn_head_dim"] == 8
    with pytest.raises(LotusError, match="leaves none"):
        structural.prune_structure(tiny_vit, "heads", 0.9)


def test_evit_keeping_everything_and_tome_merging_nothing_equal_the_model():
    model = make_tiny_vit(3)
    x = batch(5)
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(tokens.evit_forward(model, x, keep=1.0), want, atol=1e-5, rtol=0)
        assert torch.allclose(tokens.tome_forward(model, x, r=0), want, atol=1e-5, rtol=0)
        assert torch.equal(tokens.with_patch_dropout(model, 0.0)(x), want)


def test_token_counts_per_block_are_the_configured_reduction():
    model = load_model("default")  # 6 blocks, 49 patches + CLS
    x = torch.zeros(2, 1, 28, 28)
    counts: list[int] = []
    with torch.no_grad():
        tokens.tome_forward(model, x, r=8, counts=counts)
    assert counts == [50, 42, 34, 26, 18, 10, 6]  # 8 per block until (tokens - CLS) // 2 is left
    counts = []
    with torch.no_grad():
        tokens.evit_forward(model, x, keep=0.5, fuse=True, counts=counts)
    assert tokens.evit_blocks(6) == [1, 3, 4]
    # block 1: 49 -> 25 kept + 1 fused; block 3: 26 -> 13 + 1; block 4: 14 -> 7 + 1
    assert counts == [50, 50, 27, 27, 15, 9, 9]
    dropped = tokens.with_patch_dropout(model, 0.5).eval()  # evaluation puts models in eval mode: it still drops
    assert dropped.patch_drop(torch.zeros(2, 50, 96)).shape == (2, 1 + 24, 96)
    assert tokens.patch_dropout_counts(model, 0.5) == [25] * 7


def test_flops_of_the_dense_default_vit_equal_the_analytic_matmul_count():
    model = load_model("default")
    n, d, h, hd, hidden, p, depth = 50, 96, 3, 32, 288, 49, 6
    patch_embed = 2 * p * (4 * 4 * 1) * d
    block = 2 * n * d * 3 * d + 2 * (2 * h * n * n * hd) + 2 * n * d * d + 2 * (2 * n * d * hidden)
    head = 2 * d * 10
    assert measure.count_flops(model, torch.zeros(1, 1, 28, 28)) == patch_embed + depth * block + head
    assert measure.count_flops(model, torch.zeros(3, 1, 28, 28)) == 3 * (patch_embed + depth * block + head)


def test_csr_flops_count_two_per_stored_nonzero_per_token(tiny_vit):
    mask = prune(tiny_vit, "omp", 0.5)
    csr = sparse.to_csr(tiny_vit, mask)
    x = torch.zeros(1, 1, 28, 28)
    dense_linears = sum(2 * 17 * t.numel() for t in mask.values())  # 17 tokens through every block Linear
    kept = sum(int(t.sum()) for t in mask.values())
    assert measure.count_flops(csr, x, csr) == measure.count_flops(tiny_vit, x) - dense_linears + 2 * 17 * kept


def test_peak_memory_grows_with_the_batch_by_the_activations(tiny_vit):
    one = measure.peak_memory(tiny_vit, torch.zeros(1, 1, 28, 28), tiny_vit)
    eight = measure.peak_memory(tiny_vit, torch.zeros(8, 1, 28, 28), tiny_vit)
    weights = measure.state_bytes(tiny_vit)
    assert weights == 4 * sum(t.numel() for t in tiny_vit.state_dict().values())
    assert weights < one < eight < weights + 8 * (one - weights) + 1


def test_a_structurally_pruned_export_loads_back_and_its_onnx_matches_torch(tiny_vit, tmp_path):
    pruned = structural.prune_structure(tiny_vit, "heads", 0.5)
    pruned = structural.prune_structure(pruned, "channels", 0.5)
    x = batch(6)
    exported = export(pruned, x)
    assert exported.onnx_max_abs_diff <= 1e-4
    assert onnx_max_diff(exported.onnx, pruned, batch(3, seed=1)) <= 1e-4  # dynamic batch
    path = tmp_path / "pruned.safetensors"
    path.write_bytes(exported.safetensors)
    loaded = load_model(str(path))
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert structural.structure(loaded) == structural.structure(pruned) == {
        "num_heads": 1, "head_dim": 8, "mlp_hidden": 16, "params": measure.count_params(pruned)}
    assert len(exported.safetensors) < measure.checkpoint_bytes(tiny_vit)


def test_an_unavailable_method_is_a_row_saying_why_never_a_crash(tiny_ctx):
    result = run_speed(tiny_ctx, SpeedConfig(methods=("nm-2:4",), batch_sizes=(2,), best_batch=False, limit=20, min_run_time=0.01,
                                             device="cpu"))
    row = result.frame.set_index("method").loc["nm-2:4"]
    why = sparse.semi_structured_unavailable(torch.device("cpu"))
    assert row["unavailable"] == why
    assert why.startswith("2:4 semi-structured kernels need an NVIDIA GPU of compute capability >= 8.0; ")
    assert row["latency_ms"] != row["latency_ms"]  # NaN: nothing measured
    assert list(result.measured["method"]) == ["dense"]


def test_the_speed_run_is_stored_resumable_and_keyed_by_threads(tiny_ctx, monkeypatch):
    config = SpeedConfig(methods=("masked", "tome"), batch_sizes=(1, 4), best_batch=False, sparsities=(0.5,), tome_r=(2,), limit=40,
                         min_run_time=0.01, threads=1)
    first = run_speed(tiny_ctx, config)
    assert list(first.frame["method"]) == ["dense", "dense", "masked", "masked", "tome", "tome"]
    assert list(first.frame["batch_size"]) == [1, 4] * 3
    dense = first.frame[first.frame["method"] == "dense"]
    assert list(dense["speedup"]) == [1.0, 1.0]
    for _, row in first.frame.iterrows():
        base = dense[dense["batch_size"] == row["batch_size"]]["latency_ms"].item()
        assert row["speedup"] == pytest.approx(base / row["latency_ms"])
        assert row["images_per_s"] == pytest.approx(row["batch_size"] / row["latency_ms"] * 1e3)
        assert row["threads"] == 1
    assert first.frame.loc[first.frame["method"] == "tome", "tokens"].iloc[0] == [17, 15, 13]

    def fail(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr("lotus_core.speed.run.measure_row", fail)
    again = run_speed(tiny_ctx, config)
    assert again.run_id == first.run_id and again.frame.equals(first.frame)
    tiny_ctx.store.set_status(first.run_id, "interrupted")  # an unfinished run resumes from its stored points
    assert run_speed(tiny_ctx, config).frame.equals(first.frame)
    other = SpeedConfig(**{**config.__dict__, "threads": 2})
    with pytest.raises(AssertionError, match="measured again"):  # another thread count is another measurement
        run_speed(tiny_ctx, other)


def test_the_pareto_frontier_and_the_best_point_within_eps():
    import pandas as pd

    from lotus_core.speed.run import SpeedResult

    frame = pd.DataFrame({"method": ["dense", "a", "b", "c", "d"], "family": ["reference", "x", "x", "y", "y"],
                          "setting": ["-"] * 5, "batch_size": [1] * 5, "latency_ms": [10.0, 5.0, 6.0, 4.0, 12.0],
                          "accuracy": [0.90, 0.895, 0.85, 0.70, 0.91], "speedup": [1.0, 2.0, 10 / 6, 2.5, 10 / 12],
                          "images_per_s": [100, 200, 166, 250, 83], "unavailable": [None] * 5})
    assert list(pareto(frame)) == [True, True, False, True, True]
    best = SpeedResult(frame, {"accuracy": 0.90}, "r").best(eps=0.01)
    assert best[["family", "method"]].values.tolist() == [["reference", "dense"], ["x", "a"], ["y", "d"]]


def test_every_registered_method_builds_on_the_tiny_model(tiny_ctx):
    builder = Variants(tiny_ctx, torch.device("cpu"))
    config = SpeedConfig()
    x = batch(2)
    for name, method in METHODS.items():
        variant = method.build(builder, method.settings(config)[0])
        assert variant.method == name
        if variant.unavailable is None:
            with torch.no_grad():
                assert variant.forward(x).shape == (2, 10)


def test_cli_speed_prints_one_row_per_configuration_with_the_schema(tmp_path, capsys):
    code = main(["speed", "--db", str(tmp_path / "s.db"), "--methods", "dense,nm-2:4,channels", "--batch-sizes", "1,2", "--no-best-batch",
                 "--ratios", "0.5", "--limit", "30", "--min-run-time", "0.01", "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    keys = {"method", "setting", "batch_size", "latency_ms", "iqr_ms", "images_per_s", "speedup", "flops", "params",
            "bytes", "peak_mem_bytes", "accuracy", "device", "threads"}
    assert [(r["method"], r["batch_size"]) for r in out["rows"]] == [
        ("dense", 1), ("dense", 2), ("nm-2:4", 1), ("nm-2:4", 2), ("channels", 1), ("channels", 2)]
    for row in out["rows"]:
        assert keys <= set(row)
        assert ("unavailable" in row) == (row["method"] == "nm-2:4")
    assert out["rows"][2]["unavailable"] == sparse.semi_structured_unavailable(torch.device("cpu"))
    assert out["rows"][4]["params"] < out["rows"][0]["params"] and out["rows"][4]["setting"] == "50% (144 ch)"
    exported = out["exported"]
    assert exported["method"] == "channels" and exported["onnx_max_abs_diff"] <= 1e-4
    loaded = load_model(exported["files"][0])
    assert loaded.blocks[0].mlp.fc1.out_features == 144


def test_cli_speed_rejects_bad_input_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["speed", "--db", str(tmp_path / "s.db"), "--methods", "dense,fast"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("lotus speed: error: argument --methods: unknown method 'fast'; choose from "
                                       + ", ".join(METHODS) + " (see --help)\n")
    with pytest.raises(SystemExit):
        main(["speed", "--db", str(tmp_path / "s.db"), "--ratios", "50"])
    assert capsys.readouterr().err == ("lotus speed: error: argument --ratios: '50': give a comma list of fractions in "
                                       "[0, 1) (not percentages) (see --help)\n")


def test_settings_of_methods_not_measured_do_not_make_another_run():
    a = SpeedConfig(methods=("dense", "tome"), tome_r=(8, 4, 8), drops=(0.1,), ratios=(0.75,), importance="taylor")
    b = SpeedConfig(methods=("tome", "dense"), tome_r=(4, 8))
    assert (a.tome_r, a.drops, a.ratios, a.importance, a.sparsities) == ((4, 8), (), (), "magnitude", ())
    assert a == b and a.methods == ("dense", "tome")
    assert SpeedConfig(**a.__dict__) == a  # what a job rebuilds from the stored config


def test_the_experiments_table_headlines_a_speed_run(tiny_ctx):
    from lotus_core.views.experiments import headline

    result = run_speed(tiny_ctx, SpeedConfig(methods=("tome",), batch_sizes=(2,), best_batch=False, tome_r=(0,), limit=20,
                                             min_run_time=0.01))
    summary = tiny_ctx.store.get_run(result.run_id)["summary"]
    text = headline("speed", summary).text
    tome = result.frame.set_index("method").loc["tome"]
    assert tome["accuracy"] == result.dense["accuracy"]  # r = 0 is the model itself
    assert text == f"2 rows; fastest within eps at batch 2: tome r 0 {tome['speedup']:.2f}x"
    assert headline("speed-accuracy", {"accuracy": 0.5, "n": 20}).text == "accuracy 50.0% of 20"


def test_both_clocks_time_the_forward_and_a_bad_clock_is_one_line(tiny_vit):
    x = torch.zeros(2, 1, 28, 28)
    for clock in measure.CLOCKS:
        timing = measure.time_forward(tiny_vit, x, threads=1, min_run_time=0.02, clock=clock)
        assert timing.median_s > 0 and timing.iqr_s >= 0 and timing.blocks >= 1 and timing.threads == 1
    with pytest.raises(LotusError, match="unknown clock 'gpu'; choose one of wall, cpu"):
        measure.time_forward(tiny_vit, x, threads=1, clock="gpu")


def test_structural_rows_carry_the_accuracy_after_a_short_fine_tune(tiny_ctx):
    from lotus_core.training.train import TrainConfig, train

    config = SpeedConfig(methods=("channels",), batch_sizes=(2,), best_batch=False, ratios=(0.5,), limit=40, min_run_time=0.01,
                         finetune_steps=3, seed=0)
    row = run_speed(tiny_ctx, config).frame.set_index("method").loc["channels"]
    model = structural.prune_structure(tiny_ctx.model, "channels", 0.5)  # the same one-shot model, tuned by hand
    train(model, tiny_ctx.train, TrainConfig(steps=3, batch_size=64, lr=1e-4, weight_decay=0.0, seed=0),
          tiny_ctx.data_config)
    assert row["accuracy_finetuned"] == tiny_ctx.evaluate(model, limit=40, bf16=False).accuracy
    assert row["accuracy"] == tiny_ctx.evaluate(structural.prune_structure(tiny_ctx.model, "channels", 0.5), limit=40,
                                                bf16=False).accuracy


def test_the_batch_size_search_doubles_until_images_per_s_stop_growing_and_keeps_the_fastest():
    measured = {1: 100.0, 2: 190.0, 4: 350.0, 8: 600.0, 16: 610.0, 32: 400.0}
    asked = []

    def throughput(bs):
        asked.append(bs)
        return measured[bs]

    found = measure.search_batch_size(throughput, limit=1024)
    assert asked == [1, 2, 4, 8, 16]  # 610 is under 3% above 600: the search ends there
    assert found.best == 16 and found.trace == ((1, 100.0), (2, 190.0), (4, 350.0), (8, 600.0), (16, 610.0))
    assert found.stopped == "batch 16 gave less than 3% more images/s than the best smaller one"
    oom = measure.search_batch_size(lambda bs: None if bs >= 8 else measured[bs])
    assert (oom.best, len(oom.trace), oom.stopped) == (4, 3, "batch 8 does not fit in memory")
    capped = measure.search_batch_size(lambda bs: measured[bs], limit=4)
    assert (capped.best, capped.stopped) == (4, "reached the limit of 4")
    with pytest.raises(LotusError, match="not even one image per batch fits"):
        measure.search_batch_size(lambda bs: None)


def test_a_speed_run_measures_every_method_at_the_devices_best_batch_and_stores_the_search(tiny_ctx, monkeypatch):
    from lotus_core.speed.run import BEST_BATCH

    found = measure.BatchSearch(8, ((1, 10.0), (2, 19.0), (4, 30.0), (8, 40.0), (16, 39.0)), "batch 16 gave less")
    calls = []
    monkeypatch.setattr(measure, "best_batch_size", lambda *a, **k: calls.append(a) or found)
    config = SpeedConfig(methods=("masked",), batch_sizes=(1, 32), sparsities=(0.5,), limit=20, min_run_time=0.01)
    assert config.best_batch  # the default: 1, 32, 256 and the device's best
    result = run_speed(tiny_ctx, config)
    assert len(calls) == 1
    assert [(r["method"], r["batch_size"]) for r in result.rows()] == [
        ("dense", 1), ("dense", 8), ("dense", 32), ("masked", 1), ("masked", 8), ("masked", 32)]
    assert result.batch_sizes == [1, 8, 32] and result.best_batch == found.to_dict()
    assert tiny_ctx.store.points(result.run_id)[BEST_BATCH] == found.to_dict()
    tiny_ctx.store.set_status(result.run_id, "interrupted")  # a resumed run reads the stored search back
    assert run_speed(tiny_ctx, config).frame.equals(result.frame) and len(calls) == 1


def test_the_real_batch_size_search_times_the_forward_and_stops_at_the_limit(tiny_vit):
    found = measure.best_batch_size(tiny_vit, lambda bs: batch(bs), tiny_vit, threads=1, min_run_time=0.01, limit=4)
    sizes = [b for b, _ in found.trace]
    assert sizes == [1, 2, 4][:len(sizes)] and found.best in sizes and all(ips > 0 for _, ips in found.trace)
    if sizes == [1, 2, 4] and found.trace[2][1] >= 1.03 * max(found.trace[0][1], found.trace[1][1]):
        assert found.stopped == "reached the limit of 4"
    else:
        assert found.stopped.endswith("more images/s than the best smaller one")
