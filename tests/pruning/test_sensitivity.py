from lotus_core.pruning.sensitivity import SensitivityConfig, run_sensitivity


def test_sensitivity_prunes_one_layer_at_a_time(tiny_ctx):
    table = run_sensitivity(tiny_ctx, SensitivityConfig(sparsities=(0.0, 0.9), limit=100))
    assert list(table.index)[:2] == ["blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight"]
    assert table.shape == (8, 2)
    assert (table[0.0] == 0).all()  # pruning nothing costs nothing
    # the base model is untouched and the cached dense accuracy is unchanged
    assert tiny_ctx.evaluate(limit=100).accuracy == tiny_ctx.dense_accuracy(limit=100)["accuracy"]
