import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from lotus_core.core.errors import LotusError
from lotus_core.models.loading import DEFAULT_CARD, DEFAULT_WEIGHTS, load_model
from lotus_core.models.arch import data_config
from lotus_core.models.checkpoint import save_checkpoint
from tests.conftest import make_tiny_vit


def test_default_model_is_a_patch4_vit_on_28px_grayscale_with_card():
    model = load_model("default")
    assert not model.training
    assert model.patch_embed.grid_size == (7, 7) and model.patch_embed.num_patches == 49
    assert model.num_prefix_tokens == 1
    assert data_config(model)["input_size"] == (1, 28, 28)
    assert DEFAULT_WEIGHTS.stat().st_size < 5 * 2**20
    card = json.loads(DEFAULT_CARD.read_text())
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert {"architecture", "seed", "data", "epochs", "test_accuracy", "training_time_s"} <= set(card)
    assert model.lotus_id.startswith("default@")


def test_checkpoint_roundtrip_keeps_weights_and_architecture(tmp_path):
    model = make_tiny_vit(3)
    path = save_checkpoint(model, tmp_path / "tiny.safetensors")
    loaded = load_model(str(path))
    for (n, a), (m, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n == m and torch.equal(a, b)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))


def test_plain_torch_state_dict_loads_with_weights_only(tmp_path):
    from lotus_core.models.arch import build_from_arch, default_arch

    torch.manual_seed(0)
    model = build_from_arch(default_arch()).eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ckpt.pt")
    loaded = load_model(str(tmp_path / "ckpt.pt"))
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    # a file without metadata is read as the default architecture; the tiny ViT does not fit it
    torch.save(make_tiny_vit(1).state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(LotusError, match="does not fit the architecture"):
        load_model(str(tmp_path / "tiny.pt"))


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lotus-pwned-marker",))


def test_pickled_checkpoint_that_carries_code_is_refused_without_running(tmp_path):
    marker = "/tmp/lotus-pwned-marker"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Exploit()}, f)
    with pytest.raises(LotusError, match="refused to load .*could execute code"):
        load_model(str(path))
    assert not os.path.exists(marker)


def test_corrupt_and_missing_checkpoints_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(LotusError, match="not a valid safetensors"):
        load_model(str(bad))
    with pytest.raises(LotusError, match="does not exist"):
        load_model(str(tmp_path / "missing.safetensors"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"cls_token": torch.zeros(1, 1, 7)}, str(wrong))
    with pytest.raises(LotusError, match="does not fit"):
        load_model(str(wrong))


def test_unknown_timm_name_and_offline_hub_are_clear_errors(tmp_path):
    with pytest.raises(LotusError, match="unknown model 'not_a_model'"):
        load_model("not_a_model")
    with pytest.raises(LotusError, match="weights file .* does not exist"):
        load_model("vit_tiny_patch16_224", weights=tmp_path / "none.safetensors")


def test_timm_model_from_local_weights_file_gets_new_head(tmp_path):
    import timm

    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1000)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model = load_model("vit_tiny_patch16_224", num_classes=10, weights=tmp_path / "w.safetensors")
    assert model.head.out_features == 10
    assert torch.equal(model.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    cfg = data_config(model)
    assert cfg["input_size"] == (3, 224, 224) and len(cfg["mean"]) == 3
    assert model.lotus_id.startswith("vit_tiny_patch16_224@")


def test_on_meta_skips_timm_init_where_the_model_takes_it_and_builds_the_same_shapes():
    import timm

    from lotus_core.models.arch import default_arch, instantiate, on_meta

    arch = default_arch()
    meta, real = on_meta(instantiate, arch), instantiate(arch)
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in real.state_dict().items()}
    assert {p.device.type for p in meta.parameters()} == {"meta"} and meta.weight_init_mode == "reset"
    cnn = on_meta(timm.create_model, "resnet10t", pretrained=False)  # takes no weight_init: built with its init
    assert {p.device.type for p in cnn.parameters()} == {"meta"}
