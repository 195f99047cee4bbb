"""Property-based tests (hypothesis) of the parsers bad input goes through: the CLI's numeric
argument types, the sparsity grid, the mask and checkpoint readers and the architecture allow-list.

Each parser either returns a value that satisfies its documented bounds or raises its one
user-facing error (argparse's ``ArgumentTypeError`` or :class:`LotusError`); never anything else.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotus_core import commands
from lotus_core.core.errors import LotusError
from lotus_core.models.arch import ARCH_FLOAT_BOUNDS, ARCH_INT_BOUNDS, validate_arch
from lotus_core.models.checkpoint import read_checkpoint
from lotus_core.pruning import Mask
from lotus_core.pruning.sweep import MAX_GRID, parse_sparsities

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Number-like texts: floats and ints of every kind (nan, inf, huge, negative), plus arbitrary text.
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                    st.integers(-10, 10**8).map(str), st.text(max_size=12))

BOUNDS = {  # type -> predicate its accepted values satisfy
    commands.fraction: lambda v: 0 <= v < 1,
    commands.share: lambda v: 0 < v <= 1,
    commands.tolerance: lambda v: 0 <= v <= 1,
    commands.resolution: lambda v: 0 < v <= 0.5,
    commands.learning_rate: lambda v: 0 < v <= 10,
    commands.weight_decay: lambda v: 0 <= v <= 10,
    commands.positive_int: lambda v: isinstance(v, int) and 1 <= v <= commands.MAX_COUNT,
    commands.non_negative_int: lambda v: isinstance(v, int) and 0 <= v <= commands.MAX_COUNT,
    commands.seed: lambda v: isinstance(v, int) and 0 <= v < 2**32,
}


@pytest.mark.parametrize("kind", list(BOUNDS), ids=[k.__name__ for k in BOUNDS])
@SETTINGS
@given(text=numbers)
def test_numeric_argument_types_accept_only_finite_values_in_bounds(kind, text):
    try:
        value = kind(text)
    except argparse.ArgumentTypeError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert math.isfinite(value) and BOUNDS[kind](value)


@SETTINGS
@given(st.one_of(st.text(max_size=30),
                 st.tuples(st.floats(-2, 2), st.floats(-2, 2), st.floats(-1, 1)).map(lambda t: "%r:%r:%r" % t),
                 st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6).map(
                     lambda xs: ",".join(map(repr, xs)))))
def test_sparsity_grids_are_sorted_unique_fractions_or_one_error(text):
    try:
        grid = parse_sparsities(text)
    except LotusError as exc:
        assert "\n" not in str(exc)
        return
    assert 1 <= len(grid) <= MAX_GRID and list(grid) == sorted(set(grid))
    assert all(0 <= s < 1 for s in grid)


@SETTINGS
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_a_mask_or_one_error(data):
    try:
        mask = Mask.from_bytes(data)
    except LotusError:
        return
    assert mask and all(t.dtype == torch.bool for t in mask.values())


@SETTINGS
@given(st.dictionaries(st.sampled_from(["a.weight", "b.weight"]),
                       st.lists(st.integers(0, 3), min_size=1, max_size=8), min_size=1))
def test_uint8_masks_are_refused_unless_all_zero_or_one(entries):
    from safetensors.torch import save

    data = save({n: torch.tensor(v, dtype=torch.uint8) for n, v in entries.items()})
    binary = all(x in (0, 1) for v in entries.values() for x in v)
    if binary:
        mask = Mask.from_bytes(data)
        assert {n: t.tolist() for n, t in mask.items()} == {n: [bool(x) for x in v] for n, v in entries.items()}
    else:
        with pytest.raises(LotusError, match="values other than 0 and 1"):
            Mask.from_bytes(data)


@SETTINGS
@given(data=st.binary(max_size=256), suffix=st.sampled_from([".pt", ".safetensors", ".bin", ""]),
       prefix=st.sampled_from([b"", b"\x80\x02", b"PK\x03\x04", b"\x08\x00\x00\x00\x00\x00\x00\x00{"]))
def test_arbitrary_checkpoint_bytes_give_one_error(data, suffix, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ckpt{suffix}"
        path.write_bytes(prefix + data)
        with pytest.raises(LotusError) as info:
            read_checkpoint(path)
        assert "\n" not in str(info.value)


arch_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                        st.text(max_size=8), st.lists(st.floats(allow_nan=True), max_size=5))
arch_keys = st.sampled_from(["model_name", "img_size", "patch_size", "in_chans", "num_classes", "embed_dim",
                             "depth", "num_heads", "mlp_ratio", "mean", "std", "checkpoint_path", "pretrained"])


@SETTINGS
@given(st.dictionaries(arch_keys, arch_values, max_size=6), st.sampled_from([None, "vit_tiny_patch16_224", "nope"]))
def test_architecture_metadata_is_in_bounds_or_one_error(arch, name):
    if name is not None:
        arch = {**arch, "model_name": name}
    try:
        checked = validate_arch(arch, "ckpt")
    except LotusError as exc:
        assert "\n" not in str(exc)
        return
    assert checked["model_name"] == "vit_tiny_patch16_224"
    for key, (lo, hi) in ARCH_INT_BOUNDS.items():
        assert key not in checked or (type(checked[key]) is int and lo <= checked[key] <= hi)
    for key, (lo, hi) in ARCH_FLOAT_BOUNDS.items():
        assert key not in checked or lo <= checked[key] <= hi


# --------------------------------------------------------------------------- checkpoint header entries (issue 25)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=12))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)
head_keys = st.sampled_from(["state", "num_classes", "dataset", "classes", "seed", "evil"])
head_values = st.one_of(json_values, st.sampled_from(["trained", "pretrained", "new"]), st.integers(1, 12),
                        st.lists(st.text(max_size=4), min_size=0, max_size=12))


@SETTINGS
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps),
                 st.dictionaries(head_keys, head_values, max_size=6).map(json.dumps),
                 st.integers(1, 3000).map(lambda n: "[" * n + "]" * n), st.integers(1, 3000).map(lambda n: '{"a":' * n)))
def test_head_metadata_is_a_valid_head_or_one_error(text):
    """Any lotus_head text is a Head whose every field is in range, or one LotusError line (never a
    JSONDecodeError, RecursionError, TypeError or KeyError)."""
    from lotus_core.models.heads import HEAD_STATES, MAX_SEED, Head

    try:
        head = Head.from_json(text, "ckpt")
    except LotusError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("ckpt: lotus_head")
        return
    assert head.state in HEAD_STATES and type(head.num_classes) is int and 1 <= head.num_classes <= 100_000
    assert head.classes is None or (len(head.classes) == head.num_classes and all(type(c) is str for c in head.classes))
    assert head.seed is None or (type(head.seed) is int and 0 <= head.seed <= MAX_SEED)
    assert head.dataset is None or type(head.dataset) is str
    assert Head.from_json(head.to_json(), "ckpt") == head  # what a checkpoint writes, it reads back


@SETTINGS
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps),
                 st.integers(1, 5000).map(lambda n: "[" * n + "]" * n)))
def test_arch_metadata_text_is_an_object_or_one_error(text):
    """Any lotus_arch text decodes (parse_meta_json) and validates, or gives one LotusError line."""
    from lotus_core.models.arch import parse_meta_json

    try:
        validate_arch(parse_meta_json(text, "lotus_arch", "ckpt"), "ckpt")
    except LotusError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("ckpt")
