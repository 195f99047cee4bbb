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
from lotus_core.speed import METHODS, costs, measure, sparse, structural, tokens
from lotus_core.speed.export import export, onnx_max_diff
from lotus_core.results.keys import experiment_config, key_of
from lotus_core.speed.run import SpeedConfig, measured_with, pareto, run_speed
from lotus_core.speed.measure import Load
from lotus_core.speed.variants import Variants
from tests.conftest import make_tiny_vit

X = torch.Generator().manual_seed(0)


@pytest.fixture
def idle(monkeypatch):
    """A machine whose load average is 0.5 on 2 cores (never busy), whatever this one's load is now."""
    monkeypatch.setattr(measure, "machine_load", lambda: Load(0.5, 2))


def scripted(monkeypatch, per_round: dict[str, list[float]] | None = None):
    """Replace the interleaved timing by fixed per-round times: ``per_round[method]`` (seconds per call), the same
    for every batch size and setting of that method; dense defaults to 10 ms and others to 5 ms in each round.
    Returns the list of calls (the keys timed, in order, and the rounds asked for)."""
    calls = []

    def fake(forwards, x, threads, rounds, min_run_time, clock="wall", warmup=2, between=None):
        calls.append((list(forwards), rounds))
        default = lambda key: [0.010 if key.startswith("dense|") else 0.005] * rounds  # noqa: E731
        return {k: list((per_round or {}).get(k.split("|")[0], default(k))) for k in forwards}

    monkeypatch.setattr(measure, "interleaved", fake)
    return calls


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
    assert costs.count_params(csr) == costs.count_params(tiny_vit) - mask.num_pruned()


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
    assert costs.count_params(pruned) == costs.count_params(tiny_vit) - removed


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
    assert costs.count_flops(model, torch.zeros(1, 1, 28, 28)) == patch_embed + depth * block + head
    assert costs.count_flops(model, torch.zeros(3, 1, 28, 28)) == 3 * (patch_embed + depth * block + head)


def test_csr_flops_count_two_per_stored_nonzero_per_token(tiny_vit):
    mask = prune(tiny_vit, "omp", 0.5)
    csr = sparse.to_csr(tiny_vit, mask)
    x = torch.zeros(1, 1, 28, 28)
    dense_linears = sum(2 * 17 * t.numel() for t in mask.values())  # 17 tokens through every block Linear
    kept = sum(int(t.sum()) for t in mask.values())
    assert costs.count_flops(csr, x, csr) == costs.count_flops(tiny_vit, x) - dense_linears + 2 * 17 * kept


def test_peak_memory_grows_with_the_batch_by_the_activations(tiny_vit):
    one = costs.peak_memory(tiny_vit, torch.zeros(1, 1, 28, 28), tiny_vit)
    eight = costs.peak_memory(tiny_vit, torch.zeros(8, 1, 28, 28), tiny_vit)
    weights = costs.state_bytes(tiny_vit)
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
        "num_heads": 1, "head_dim": 8, "mlp_hidden": 16, "params": costs.count_params(pruned)}
    assert len(exported.safetensors) < costs.checkpoint_bytes(tiny_vit)


def test_an_unavailable_method_is_a_row_saying_why_never_a_crash(tiny_ctx):
    result = run_speed(tiny_ctx, SpeedConfig(methods=("nm-2:4",), batch_sizes=(2,), best_batch=False, limit=20, min_run_time=0.01,
                                             device="cpu"))
    row = result.frame.set_index("method").loc["nm-2:4"]
    why = sparse.semi_structured_unavailable(torch.device("cpu"))
    assert row["unavailable"] == why
    assert why.startswith("2:4 semi-structured kernels need an NVIDIA GPU of compute capability >= 8.0; ")
    assert row["latency_ms"] != row["latency_ms"]  # NaN: nothing measured
    assert list(result.measured["method"]) == ["dense"]


def test_the_speed_run_is_stored_resumable_and_keyed_by_threads(tiny_ctx, monkeypatch, idle):
    config = SpeedConfig(methods=("masked", "tome"), batch_sizes=(1, 4), best_batch=False, sparsities=(0.5,), tome_r=(2,), limit=40,
                         min_run_time=0.01, threads=1, rounds=5)
    # per-round seconds: the load doubles from round 3 on, for every configuration alike (they are interleaved)
    calls = scripted(monkeypatch, {"dense": [0.010, 0.010, 0.020, 0.020, 0.020],
                                   "masked": [0.011, 0.010, 0.022, 0.021, 0.020],
                                   "tome": [0.004, 0.005, 0.008, 0.010, 0.010]})
    first = run_speed(tiny_ctx, config)
    # every batch size times dense and every configuration together, dense first, in the rounds asked for
    assert calls == [(["dense|0|1", "masked|0.5|1", "tome|2|1"], 5), (["dense|0|4", "masked|0.5|4", "tome|2|4"], 5)]
    assert list(first.frame["method"]) == ["dense", "masked", "tome", "dense", "masked", "tome"]
    assert list(first.frame["batch_size"]) == [1, 1, 1, 4, 4, 4]
    rows = first.frame.set_index(["method", "batch_size"])
    assert rows.loc[("dense", 1), ["speedup", "speedup_low", "speedup_high"]].tolist() == [1.0, 1.0, 1.0]
    # the speed-up is the median of the per-round ratios dense / configuration: 2.0 for tome (ratios 2.5, 2, 2.5,
    # 2, 2), not the ratio of the median times (20 / 8 = 2.5) that a load change between separate blocks distorts
    assert rows.loc[("tome", 4), "speedup"] == 2.0
    assert rows.loc[("masked", 4), "speedup"] == pytest.approx(sorted([10 / 11, 1.0, 20 / 22, 20 / 21, 1.0])[2])
    assert rows.loc[("tome", 4), "latency_ms"] == pytest.approx(8.0)  # the median of the round times
    for _, row in first.frame.iterrows():
        assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
        assert row["images_per_s"] == pytest.approx(row["batch_size"] / row["latency_ms"] * 1e3)
        assert row["threads"] == 1 and row["rounds"] == 5 and (row["load_before"], row["load_after"]) == (0.5, 0.5)
    assert first.frame.loc[first.frame["method"] == "tome", "tokens"].iloc[0] == [17, 15, 13]

    def fail(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(measure, "interleaved", fail)
    again = run_speed(tiny_ctx, config)
    assert again.run_id == first.run_id and again.frame.equals(first.frame)
    tiny_ctx.store.set_status(first.run_id, "interrupted")  # an unfinished run resumes from its stored points
    assert run_speed(tiny_ctx, config).frame.equals(first.frame)
    # another thread count (or CPU, or torch) is where a measurement was made, not what it is: the same key, another
    # run id; the stored one is served (labelled by its provenance) until this machine measures its own, kept beside
    other = SpeedConfig(**{**config.__dict__, "threads": 2})
    assert experiment_config(tiny_ctx, "speed", other)["computed"]["threads"] == 2
    assert key_of(experiment_config(tiny_ctx, "speed", other)) == key_of(experiment_config(tiny_ctx, "speed", config))
    assert run_speed(tiny_ctx, other).run_id == first.run_id
    assert measured_with(tiny_ctx.store.get_run(first.run_id), "threads") == 1
    with pytest.raises(AssertionError, match="measured again"):  # measuring here is another measurement
        run_speed(tiny_ctx, other, here=True)


def test_the_pareto_frontier_and_the_best_point_within_eps():
    import pandas as pd

    from lotus_core.speed.run import SpeedResult

    frame = pd.DataFrame({"method": ["dense", "a", "b", "c", "d"], "family": ["reference", "x", "x", "y", "y"],
                          "setting": ["-"] * 5, "batch_size": [1] * 5, "latency_ms": [10.0, 5.0, 6.0, 4.0, 12.0],
                          "accuracy": [0.90, 0.895, 0.85, 0.70, 0.91], "speedup": [1.0, 2.0, 10 / 6, 2.5, 10 / 12],
                          "images_per_s": [100, 200, 166, 250, 83], "unavailable": [None] * 5,
                          "speedup_low": [1.0, 1.9, 1.5, 2.4, 0.8], "speedup_high": [1.0, 2.1, 1.8, 2.6, 0.9],
                          "unreliable": [None] * 5})
    assert list(pareto(frame)) == [True, True, False, True, True]
    result = SpeedResult(frame, {"accuracy": 0.90}, "r")
    best = result.best(eps=0.01)
    assert best[["family", "method"]].values.tolist() == [["reference", "dense"], ["x", "a"], ["y", "d"]]
    assert best[["speedup_low", "speedup_high"]].values.tolist() == [[1.0, 1.0], [1.9, 2.1], [0.8, 0.9]]
    # an unreliable row (a busy machine) or one without an interval (a single sample) never feeds a headline:
    # not the best point within eps, not the Pareto frontier
    doubtful = frame.assign(unreliable=[None, "the machine was busy", None, None, None],
                            speedup_low=[1.0, 1.9, 1.5, 2.4, float("nan")])
    result = SpeedResult(doubtful, {"accuracy": 0.90}, "r")
    assert result.best(eps=0.01)[["family", "method"]].values.tolist() == [["reference", "dense"]]
    # the frontier of the reliable rows: without a (unreliable), b (6 ms, 85%) is no longer beaten
    assert result.at(1)[["reliable", "pareto"]].values.tolist() == [[True, True], [False, False], [True, True],
                                                                    [True, True], [False, False]]


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
        ("dense", 1), ("nm-2:4", 1), ("channels", 1), ("dense", 2), ("nm-2:4", 2), ("channels", 2)]
    for row in out["rows"]:
        assert keys <= set(row)
        assert ("unavailable" in row) == (row["method"] == "nm-2:4")
    assert out["rows"][1]["unavailable"] == sparse.semi_structured_unavailable(torch.device("cpu"))
    assert out["rows"][2]["params"] < out["rows"][0]["params"] and out["rows"][2]["setting"] == "50% (144 ch)"
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


def test_the_experiments_table_headlines_a_speed_run(tiny_ctx, monkeypatch, idle):
    from lotus_core.views.experiments import headline

    scripted(monkeypatch, {"dense": [0.010, 0.010, 0.012], "tome": [0.005, 0.005, 0.005]})
    result = run_speed(tiny_ctx, SpeedConfig(methods=("tome",), batch_sizes=(2,), best_batch=False, tome_r=(0,), limit=20,
                                             min_run_time=0.01, rounds=3))
    summary = tiny_ctx.store.get_run(result.run_id)["summary"]
    text = headline("speed", summary).text
    tome = result.frame.set_index("method").loc["tome"]
    assert tome["accuracy"] == result.dense["accuracy"]  # r = 0 is the model itself
    assert (tome["speedup"], tome["speedup_low"], tome["speedup_high"]) == (2.0, 2.0, 2.4)
    assert text == "2 rows; fastest within eps at batch 2: tome r 0 2.00x (2.00-2.40x)"
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
    scripted(monkeypatch)
    from lotus_core.speed.run import BEST_BATCH

    found = measure.BatchSearch(8, ((1, 10.0), (2, 19.0), (4, 30.0), (8, 40.0), (16, 39.0)), "batch 16 gave less")
    calls = []
    monkeypatch.setattr(measure, "best_batch_size", lambda *a, **k: calls.append(a) or found)
    config = SpeedConfig(methods=("masked",), batch_sizes=(1, 32), sparsities=(0.5,), limit=20, min_run_time=0.01)
    assert config.best_batch  # the default: 1, 32, 256 and the device's best
    result = run_speed(tiny_ctx, config)
    assert len(calls) == 1
    assert [(r["method"], r["batch_size"]) for r in result.rows()] == [
        ("dense", 1), ("masked", 1), ("dense", 8), ("masked", 8), ("dense", 32), ("masked", 32)]
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


def test_interleaved_timing_times_every_forward_once_per_round_in_the_same_order(tiny_vit):
    order = []

    def recorder(name):
        def forward(x):
            order.append(name)
            return x
        return forward

    times = measure.interleaved({"dense": recorder("dense"), "a": recorder("a"), "b": recorder("b")},
                                torch.zeros(1), threads=1, rounds=4, min_run_time=0.004, warmup=1)
    assert list(times) == ["dense", "a", "b"] and all(len(t) == 4 and min(t) > 0 for t in times.values())
    timed = order[6:]  # after each forward's warm-up call and one-call estimate
    runs = [name for i, name in enumerate(timed) if i == 0 or timed[i - 1] != name]  # consecutive calls collapsed
    assert runs == ["dense", "a", "b"] * 4
    with pytest.raises(LotusError, match="at least one round"):
        measure.interleaved({"dense": tiny_vit}, batch(1), threads=1, rounds=0, min_run_time=0.01)


def test_the_speed_up_is_the_median_of_per_round_ratios_with_a_bootstrap_interval():
    import numpy as np
    from scipy import stats

    # a load change between rounds hits dense and the variant alike: every round's ratio is exactly 2
    steady = measure.ratio_interval([0.010, 0.010, 0.030, 0.030, 0.020], [0.005, 0.005, 0.015, 0.015, 0.010])
    assert (steady.median, steady.low, steady.high, steady.rounds, steady.spread) == (2.0, 2.0, 2.0, 5, 0.0)
    dense, variant = [1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 1.0], [0.5, 0.5, 0.5, 0.5, 0.4, 0.5, 0.6]
    ratios = np.array(dense) / np.array(variant)
    got = measure.ratio_interval(dense, variant)
    assert got.median == float(np.median(ratios))
    want = stats.bootstrap((ratios,), np.median, confidence_level=0.95, n_resamples=2000, method="percentile",
                           random_state=np.random.default_rng(0)).confidence_interval
    assert (got.low, got.high) == (want.low, want.high)
    assert ratios.min() <= got.low <= got.median <= got.high <= ratios.max()
    assert got.spread == pytest.approx((got.high - got.low) / got.median)


def test_a_busy_machine_or_a_wide_interval_marks_the_measurement_unreliable(tiny_ctx, monkeypatch):
    from lotus_core.speed.reliability import MAX_SPREAD
    from lotus_core.speed.run import speed_headline

    config = SpeedConfig(methods=("masked",), batch_sizes=(2,), best_batch=False, sparsities=(0.5,), limit=20,
                         min_run_time=0.01, rounds=3)
    scripted(monkeypatch, {"dense": [0.010, 0.010, 0.010], "masked": [0.010, 0.010, 0.010]})
    monkeypatch.setattr(measure, "machine_load", lambda: Load(2.5, 2))  # more runnable processes than cores
    busy = run_speed(tiny_ctx, config)
    assert busy.frame["unreliable"].tolist() == ["the machine was busy (load average 2.5 on 2 cores)"] * 2
    assert busy.best().empty and not busy.at(2)["pareto"].any()
    summary = tiny_ctx.store.get_run(busy.run_id)["summary"]
    assert summary["unreliable"] == 2 and summary["provenance"]["load"] == [2.5, 2.5]
    assert summary["provenance"]["cpu"] == measure.cpu_model() and summary["provenance"]["cores"] == 2
    assert speed_headline(summary).text == "2 rows (2 unreliable); none reliably within eps is faster than dense"

    # an idle machine, but one round of the variant three times slower: its interval is too wide to trust
    monkeypatch.setattr(measure, "machine_load", lambda: Load(1.9, 2))
    scripted(monkeypatch, {"dense": [0.010, 0.010, 0.010], "masked": [0.010, 0.030, 0.008]})
    wide = run_speed(tiny_ctx, SpeedConfig(**{**config.__dict__, "take": 2}))
    rows = wide.frame.set_index("method")
    low, high = rows.loc["masked", "speedup_low"], rows.loc["masked", "speedup_high"]
    assert (low, high) == (pytest.approx(1 / 3), 1.25)  # the ratios 1, 1/3, 1.25: median 1
    spread = (high - low) / 1.0
    assert spread > MAX_SPREAD
    assert rows.loc["masked", "unreliable"] == (f"the speed-up's 95% interval spans {100 * spread:.0f}% of it "
                                                f"(more than {100 * MAX_SPREAD:.0f}%)")
    assert rows.loc["dense", "unreliable"] != rows.loc["dense", "unreliable"]  # NaN: reliable
    assert wide.best()["method"].tolist() == ["dense"]


def test_another_live_lotus_run_makes_the_machine_busy(tiny_ctx, idle):
    from lotus_core.speed.reliability import busy_reason

    assert busy_reason(tiny_ctx, measure.machine_load()) is None
    other = tiny_ctx.store.start_run("sweep", {"x": 1}, tiny_ctx.model_id, "tiny", status="queued")
    assert tiny_ctx.store.claim(other, "worker-host:12345:abcd", 15.0)  # a live lease held by another process
    assert busy_reason(tiny_ctx, measure.machine_load()) == f"another LOTUS run was computing (sweep {other[:6]})"
    assert busy_reason(tiny_ctx, measure.machine_load(), own_run=other) is None  # a run never counts itself


def test_measuring_again_keeps_every_measurement_as_its_own_run(tiny_ctx, monkeypatch, idle):
    from lotus_core.speed.history import history, latest, measure_again

    config = SpeedConfig(methods=("masked",), batch_sizes=(2,), best_batch=False, sparsities=(0.5,), limit=20,
                         min_run_time=0.01, rounds=3)
    assert latest(tiny_ctx, config) == config and measure_again(tiny_ctx, config).take == 1
    scripted(monkeypatch, {"dense": [0.010] * 3, "masked": [0.010] * 3})
    first = run_speed(tiny_ctx, config)
    assert latest(tiny_ctx, config).take == 1
    again = measure_again(tiny_ctx, config)
    assert again.take == 2 and dataclasses_replace(again, take=1) == config
    scripted(monkeypatch, {"dense": [0.010] * 3, "masked": [0.005] * 3})
    second = run_speed(tiny_ctx, again)
    assert second.run_id != first.run_id and tiny_ctx.store.get_run(first.run_id)["status"] == "done"
    assert latest(tiny_ctx, config).take == 2 and measure_again(tiny_ctx, config).take == 3
    seen = history(tiny_ctx, config)
    assert seen[["take", "run_id", "method", "speedup"]].values.tolist() == [
        [1, first.run_id, "dense", 1.0], [1, first.run_id, "masked", 1.0],
        [2, second.run_id, "dense", 1.0], [2, second.run_id, "masked", 2.0]]
    assert seen["load"].tolist() == [[0.5, 0.5]] * 4
    other = SpeedConfig(**{**config.__dict__, "sparsities": (0.7,)})  # other settings: not this history
    assert history(tiny_ctx, other).empty


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


@pytest.mark.parametrize("args, message", [
    (["--min-run-time", "nan"], "argument --min-run-time: nan is not a finite number (see --help)"),
    (["--min-run-time", "inf"], "argument --min-run-time: inf is not a finite number (see --help)"),
    (["--min-run-time", "0"], "min_run_time (the timing budget per configuration) must be a number of seconds in "
                              "(0, 60] (got 0.0); give for example 0.5"),
    (["--min-run-time", "1e6"], "min_run_time (the timing budget per configuration) must be a number of seconds in "
                                "(0, 60] (got 1000000.0); give for example 0.5"),
    (["--rounds", "2"], "rounds must be a whole number in [3, 100] (got 2)"),
    (["--eps", "nan"], "argument --eps: nan is not a finite number (see --help)"),
    (["--again", "--no-cache"], "--again keeps the earlier measurements and --no-cache deletes the last one: give one "
                                "of them"),
    (["--out", "o"], "--out exports a structurally pruned model: add heads or channels to --methods"),
])
def test_a_speed_refusal_is_one_line_before_any_run_is_recorded(tmp_path, capsys, args, message):
    from lotus_core.results.store import Store

    db = tmp_path / "s.db"
    try:  # argparse's refusals exit, the others return the code
        code = main(["speed", "--db", str(db), "--methods", "dense", "--batch-sizes", "1", "--no-best-batch",
                     "--limit", "10", *args])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert capsys.readouterr().err == f"lotus speed: error: {message}\n"  # one line: no warning, no progress
    assert not db.exists() or Store(db).runs().empty


def test_timing_imports_torch_benchmark_without_the_no_cuda_warning(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "CUDA_HOME": str(tmp_path)}  # a CUDA home without a CUDA runtime: torch warns on import
    run = lambda code: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,  # noqa: E731
                                      timeout=120).stderr
    assert run("from lotus_core.speed import measure; measure._benchmark().Timer") == ""
    if not torch.cuda.is_available():  # the warning this prevents (where CUDA exists, torch has nothing to say)
        assert "No CUDA runtime is found" in run("import torch.utils.benchmark")


def test_the_report_quotes_a_reliable_speed_up_with_its_interval_and_device_and_never_an_unreliable_one(
        tiny_ctx, monkeypatch, idle):
    from lotus_core.views.report import ReportOptions, Stored, speed_section

    config = SpeedConfig(methods=("channels",), batch_sizes=(2,), best_batch=False, ratios=(0.0,), limit=40,
                         min_run_time=0.01, rounds=3, threads=1)
    scripted(monkeypatch, {"dense": [0.010, 0.010, 0.012], "channels": [0.008, 0.008, 0.008]})
    result = run_speed(tiny_ctx, config)  # channels 0% is the model itself: within eps by construction
    row = result.frame.set_index("method").loc["channels"]
    assert (row["speedup"], row["speedup_low"], row["speedup_high"]) == (1.25, 1.25, 1.5)
    section = speed_section(tiny_ctx, ReportOptions(limit=40), Stored(tiny_ctx, 40))
    assert section.value == 1.25
    assert section.sentence.startswith(f"On cpu ({config.device_name}) with 1 thread, at batch 2, the fastest "
                                       "configuration within 1 point of the dense accuracy is channels 0% ")
    assert (": 1.25x the dense speed (95% interval 1.25-1.50x, median of 3 interleaved rounds; 8 ms against 10 ms "
            "per batch)") in section.sentence

    monkeypatch.setattr(measure, "machine_load", lambda: Load(3.0, 2))  # measured again on a busy machine
    from lotus_core.speed.history import measure_again

    run_speed(tiny_ctx, measure_again(tiny_ctx, config))
    section = speed_section(tiny_ctx, ReportOptions(limit=40), Stored(tiny_ctx, 40))
    assert section.value is None
    assert section.sentence.endswith("at batch 2, 2 of 2 measurements are unreliable (the machine was busy (load "
                                     "average 3 on 2 cores)) and no reliable one within 1 point of the dense accuracy "
                                     "runs faster: nothing is quoted; measure again on the Speed page when the machine "
                                     "is quieter.")


def test_cli_speed_again_stores_a_new_take_and_lists_every_measurement(tmp_path, capsys):
    common = ["speed", "--db", str(tmp_path / "s.db"), "--methods", "dense", "--batch-sizes", "1", "--no-best-batch",
              "--limit", "10", "--min-run-time", "0.01", "--rounds", "3", "--json"]
    outs = []
    for extra in ([], [], ["--again"], []):
        assert main([*common, *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert [o["take"] for o in outs] == [1, 1, 2, 2]  # read back, read back, measured again, the last read back
    assert outs[1]["run_id"] == outs[0]["run_id"] != outs[2]["run_id"] == outs[3]["run_id"]
    assert [(m["take"], m["run_id"]) for m in outs[3]["measurements"]] == [(1, outs[0]["run_id"]), (2, outs[2]["run_id"])]
    prov = outs[2]["provenance"]
    assert prov["cpu"] == measure.cpu_model() and len(prov["load"]) == 2 and outs[2]["rounds"] == 3
    assert outs[2]["rows"][0]["speedup"] == outs[2]["rows"][0]["speedup_low"] == 1.0
