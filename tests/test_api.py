"""The notebook API (lotus_core/api/): in-memory models and data, options as the CLI's flags, stored results."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

import lotus_core
from lotus_core import api
from lotus_core.api.inputs import _ProgressStore
from lotus_core.api.options import parser_options
from lotus_core.cli import build_parser, main
from lotus_core.core.errors import LotusError
from lotus_core.models.loading import from_module
from lotus_core.results.store import Store
from lotus_core.views.experiments import run_table

from tests.conftest import make_tiny_imageset, make_tiny_vit


class Pairs(torch.utils.data.Dataset):
    """torchvision's convention: (ToTensor() image in [0, 1], label) pairs, with class names."""

    def __init__(self, data, pil: bool = False):
        self.data, self.pil, self.classes = data, pil, data.classes

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        image = self.data.images[i]
        if self.pil:
            return Image.fromarray(image[0].numpy(), mode="L"), int(self.data.labels[i])
        return image.float() / 255, int(self.data.labels[i])


@pytest.fixture
def test_pairs():
    return Pairs(make_tiny_imageset(60, seed=0))


@pytest.fixture
def train_pairs():
    return Pairs(make_tiny_imageset(80, seed=1, split="train"))


def test_image_set_reads_pil_tensors_and_loaders_back_to_the_same_bytes():
    data = make_tiny_imageset(30, seed=3)
    from_tensors, from_pil = api.image_set(Pairs(data), "test"), api.image_set(Pairs(data, pil=True), "test")
    from_loader = api.image_set(torch.utils.data.DataLoader(Pairs(data), batch_size=7), "test", classes=data.classes)
    for got in (from_tensors, from_pil, from_loader):
        assert torch.equal(got.images, data.images) and torch.equal(got.labels, data.labels)
        assert got.classes == data.classes
    # named by content: the same images give the same name, so a rerun finds its results
    assert from_tensors.name == from_pil.name == f"memory:{data.digest[:12]}"


def test_image_set_refuses_normalised_images_in_one_line():
    bad = torch.utils.data.TensorDataset(torch.randn(4, 1, 28, 28), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(LotusError, match=r"ToTensor\(\) images in \[0, 1\] without Normalize"):
        api.image_set(bad, "test")


def test_from_module_copies_the_weights_and_is_named_by_their_hash():
    module = make_tiny_vit(0).train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    model = from_module(module)
    assert module.training and model is not module  # the caller's module is left as it was
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    x = torch.rand(3, 1, 28, 28)
    module.eval()
    assert torch.allclose(model(x), module(x), atol=1e-6)
    # the id: sha256 of the architecture (canonical JSON) and of each state entry's name, dtype, shape and bytes
    h = hashlib.sha256(json.dumps(model.lotus_arch, sort_keys=True).encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    assert model.lotus_id == f"VisionTransformer@{h.hexdigest()[:12]}"
    with torch.no_grad():
        module.head.bias[0] += 1e-3  # one weight changed: another model
    assert from_module(module).lotus_id != model.lotus_id


def test_unsupported_modules_get_one_clear_error():
    with pytest.raises(LotusError, match="not a Vision Transformer LOTUS can analyse"):
        from_module(torch.nn.Linear(4, 2))
    import timm

    pooled = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=28, patch_size=7, in_chans=1,
                               num_classes=10, embed_dim=16, depth=2, num_heads=2, global_pool="avg")
    with pytest.raises(LotusError, match="ViT variant LOTUS does not analyse"):
        from_module(pooled)


def test_keywords_are_the_cli_flags_with_the_cli_defaults():
    import inspect

    for name in ("sweep", "prune", "lth", "patches", "speed", "finetune", "soup", "similarity"):
        command = name.replace("_", "-")
        sub = build_parser(command)._subparsers._group_actions[0].choices[command]
        cli = {a.option_strings[0] if a.option_strings else a.dest: a for a in sub._actions}
        params = inspect.signature(api.FUNCTIONS[name]).parameters
        for option in parser_options(lotus_core.commands.COMMANDS[command])[1]:
            flag = option.action.option_strings[0] if option.action.option_strings else option.action.dest
            action = cli[flag]  # the same flag on the command line ...
            assert option.name == (flag[2:] if flag.startswith("--") else flag).replace("-", "_")  # ... same name
            expected = False if action.nargs == 0 else (inspect.Parameter.empty if action.required else action.default)
            assert params[option.name].default == expected, (name, option.name)


def test_unknown_or_invalid_keywords_are_refused_before_anything_runs(test_pairs):
    store = Store()
    with pytest.raises(LotusError, match="no option 'sparsity_list'"):
        lotus_core.sweep(make_tiny_vit(0), test_pairs, sparsity_list=[0.5])
    with pytest.raises(LotusError, match="--eps: 2.0 is outside"):
        lotus_core.sweep(make_tiny_vit(0), test_pairs, eps=2.0)
    assert store.runs().empty


def test_sweep_is_the_cli_sweep_and_a_rerun_is_served_from_the_store(capsys):
    kwargs = dict(methods="omp,random", sparsities=[0.5, 0.9], limit=40)
    result = lotus_core.sweep("default", "fashion-mnist", progress=False, **kwargs)
    assert capsys.readouterr().err == ""  # silent when asked
    # the CLI with the same flags keys the same run (one definition of options, context and key)
    assert main(["sweep", "--methods", "omp,random", "--sparsities", "0.5,0.9", "--limit", "40", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == result.run_id
    again = lotus_core.sweep("default", "fashion-mnist", progress=False, **kwargs)
    assert again.run_id == result.run_id and again.turning_points == result.turning_points
    frame = result.to_frame()
    assert list(frame[["method", "sparsity"]].itertuples(index=False, name=None)) == \
        [("omp", 0.5), ("omp", 0.9), ("random", 0.5), ("random", 0.9)]
    # the turning point is the rule applied to the curve: highest sparsity before accuracy < dense - eps
    for method, part in frame.groupby("method"):
        below = part[part["accuracy"] < result.dense_accuracy - 0.01]["sparsity"]
        first = below.min() if len(below) else None
        assert result.turning_points[method] == max([0.0] + [s for s in part["sparsity"] if first is None or s < first])
    assert lotus_core.essential_sparsity(result) == result.turning_points
    fig = result.figure()
    assert {"omp", "random"} <= {t.name.split(" ")[0] for t in fig.data if t.name}
    assert "turning point" in result._repr_html_()


def test_in_memory_model_and_data_reach_the_dashboard_table(test_pairs, train_pairs, capsys):
    module = make_tiny_vit(0)
    result = lotus_core.sweep(module, test_pairs, train=train_pairs, methods="omp", sparsities="0.5", limit=30)
    assert "sweep (" in capsys.readouterr().err  # the tqdm bar, in the terminal
    table = run_table(Store())
    row = table[table["id"] == result.run_id].iloc[0]
    assert row["model"] == from_module(module).lotus_id
    assert row["dataset"] == f"memory:{make_tiny_imageset(60, seed=0).digest[:12]}" and row["status"] == "done"


def test_experiments_that_train_need_training_data(test_pairs):
    with pytest.raises(LotusError, match="pass train="):
        lotus_core.sweep(make_tiny_vit(0), test_pairs, methods="wanda", sparsities="0.5", limit=20, progress=False)


def test_keyboard_interrupt_keeps_finished_points_and_a_rerun_resumes(test_pairs, train_pairs, monkeypatch):
    calls = []
    original = _ProgressStore.set_progress

    def interrupting(self, run_id, progress):
        original(self, run_id, progress)
        calls.append(progress.get("done"))
        if progress.get("done") == 2 and len(calls) < 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(_ProgressStore, "set_progress", interrupting)
    kwargs = dict(train=train_pairs, methods="omp", sparsities="0.3,0.6,0.9", limit=20, progress=False)
    with pytest.raises(KeyboardInterrupt):
        lotus_core.sweep(make_tiny_vit(0), test_pairs, **kwargs)
    store = Store()
    sweep = store.runs(kind="sweep").iloc[0]
    assert sweep["status"] == "interrupted" and len(store.points(sweep["id"])) == 2
    calls.clear()
    calls.extend([None] * 10)  # no second interruption
    result = lotus_core.sweep(make_tiny_vit(0), test_pairs, **kwargs)
    assert result.run_id == sweep["id"] and len(result.to_frame()) == 3


def test_patches_result_draws_the_patch_view(test_pairs, train_pairs):
    result = api.patches(make_tiny_vit(0), test_pairs, train=train_pairs, index=[0, 3], drop=0.25, progress=False)
    frame = result.to_frame()
    assert frame.groupby("index")["kept"].sum().tolist() == [12, 12]  # 16 patches, 25% dropped
    fig = result.figure()
    assert sum(t.type == "image" for t in fig.data) == 2
    assert sum(s.name == "dropped" for s in fig.layout.shapes) == 8


def test_every_experiment_command_has_a_function():
    from lotus_core.commands import COMMANDS

    expected = {c.name.replace("-", "_") for c in COMMANDS.values() if c.context and c.name != "info"} | {"similarity"}
    assert set(api.FUNCTIONS) == expected
    assert lotus_core.lth is api.lth and lotus_core.soup is api.soup and lotus_core.finetune is api.finetune


def test_a_training_kind_and_a_table_without_a_run(test_pairs, train_pairs):
    lth = lotus_core.lth(make_tiny_vit(0), test_pairs, train=train_pairs, target=0.36, steps=4, batch_size=16,
                         limit=30, progress=False)
    run = Store().get_run(lth.run_id)
    assert run["status"] == "done" and run["kind"] == "lth" and run["dataset"].startswith("memory:")
    frame = lth.to_frame()
    assert frame["x"].max() == pytest.approx(0.36, abs=0.01)  # IMP reaches the target sparsity (0.2, then 0.36)
    assert lth.figure() is not None
    # sensitivity stores no run of its own: its table is the command's layer -> sparsity -> drop
    sensitivity = api.sensitivity(make_tiny_vit(0), test_pairs, sparsities="0.5", limit=30, progress=False)
    table = sensitivity.to_frame()
    assert list(table.columns) == ["0.5"] and len(table) == 8  # 2 blocks x (qkv, proj, fc1, fc2)
    assert sensitivity.figure() is None


def test_a_quiet_call_silences_only_its_own_progress_lines(test_pairs, capsys):
    import sys

    from lotus_core.commands import progress_stream

    stderr = sys.stderr
    lotus_core.sweep(make_tiny_vit(0), test_pairs, methods="omp", sparsities="0.5", limit=20, progress=False)
    assert sys.stderr is stderr and progress_stream() is sys.stderr  # nothing process-wide was swapped
    assert capsys.readouterr().err == ""
