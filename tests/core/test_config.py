"""Configs: one rebuilder (from_mapping, strict), CLI arguments read back (from_args), stored configs with retired
fields (from_stored), field comments, and CLI flags generated from the dataclasses."""
import argparse
import dataclasses
import json

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from lotus_core.commands import config_args, fraction, positive_int
from lotus_core.core.config import field_comments, from_args, from_mapping, from_stored
from lotus_core.core.errors import LotusError
from lotus_core.lottery.controls import ControlConfig
from lotus_core.lottery.lth import LTHConfig
from lotus_core.patches import PatchScoring
from lotus_core.patches.fidelity import FidelityConfig
from lotus_core.patches.ticket_training import LotteryTrainConfig
from lotus_core.pruning import PRUNERS
from lotus_core.pruning.sweep import SweepConfig


def _parser(arguments) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for names, kwargs in arguments:
        parser.add_argument(*names, **kwargs)
    return parser


# steps >= 50: a config is checked when built (step:50 rewinding needs at least 50 steps in round 0)
@settings(max_examples=50, deadline=None)
@given(target=st.floats(0.01, 0.99), steps=st.integers(50, 10_000), seed=st.integers(0, 2**31),
       rewind=st.sampled_from(["pretrained", "step:1", "step:50"]), block=st.integers(-12, 11),
       scorers=st.lists(st.sampled_from(["cls", "rollout", "random"]), min_size=1, max_size=3),
       methods=st.lists(st.sampled_from(["omp", "nm", "sparsegpt-nm", "grasp"]), min_size=1, max_size=3),
       n=st.integers(1, 3), temperature=st.sampled_from([1.0, 200.0]))
def test_configs_survive_the_store_round_trip(target, steps, seed, rewind, block, scorers, methods, n, temperature):
    """What a queued job holds (JSON of the config: tuples become lists, options dicts) rebuilds the same config,
    and so does a stored sweep's key (its options flat, as keys always had them)."""
    options = {m: {"n": n} if "nm" in m else {"temperature": temperature} for m in methods if m != "omp"}
    sweep = SweepConfig(methods=tuple(dict.fromkeys(methods)), sparsities=(0.1, target), method_options=options)
    for cfg in (LTHConfig(target=target, steps=steps, seed=seed, rewind=rewind),
                ControlConfig(LTHConfig(target=target, steps=steps), round=2, seed=seed),
                FidelityConfig(scorers=tuple(scorers), scoring=PatchScoring(block=block), seed=seed), sweep):
        stored = json.loads(json.dumps(dataclasses.asdict(cfg)))
        assert from_mapping(type(cfg), stored) == cfg
    assert from_stored(SweepConfig, json.loads(json.dumps(sweep.key_params()))) == sweep


def test_unknown_keys_are_refused_and_retired_fields_are_mapped_explicitly():
    """A key that is no field would never arrive anywhere: one line naming it. CLI arguments hold other flags
    too, so from_args reads a config's own fields (nested groups from the same flat flags)."""
    with pytest.raises(LotusError, match=r"^LTHConfig has no setting 'stepz'; its settings are target, ") as exc:
        from_mapping(LTHConfig, {"target": 0.5, "stepz": 7})
    assert "\n" not in str(exc.value)
    cfg = from_args(LotteryTrainConfig, {"block": 2, "fuse": "max", "epochs": 3, "model": "other flag"})
    assert cfg.scoring == PatchScoring(block=2, fuse="max") and cfg.epochs == 3
    # a sweep stored before options were per method: its flat n/m went to nm, its calib_size to wanda; rounds to no
    # method of it (dropped: it never reached one)
    old = {"methods": ["nm", "wanda"], "n": 1, "m": 8, "calib_size": 64, "rounds": 100, "damp": 0.01}
    assert from_stored(SweepConfig, old) == SweepConfig(methods=("nm", "wanda"),
                                                        method_options={"nm": {"n": 1, "m": 8},
                                                                        "wanda": {"calib_size": 64}})
    with pytest.raises(LotusError, match="SweepConfig has no setting 'n'"):
        from_mapping(SweepConfig, old)


def test_nested_groups_are_rebuilt_from_flat_values_and_comments_document_fields():
    cfg = from_args(LotteryTrainConfig, {"block": 2, "fuse": "max", "epochs": 3, "unknown": 1})
    assert cfg.scoring == PatchScoring(block=2, fuse="max") and cfg.epochs == 3
    assert field_comments(LTHConfig)["prune_fraction"] == "fraction of the *remaining* scoped weights pruned per round"
    assert field_comments(LotteryTrainConfig)["scoring"].startswith("how the scorer reads the base model")
    assert set(field_comments(PatchScoring)) == {"block", "fuse", "discard_ratio", "ig_steps"}


def test_generated_flags_parse_to_the_default_config_and_keep_validators():
    args = config_args(LTHConfig, target=fraction, steps=positive_int)
    assert [names for names, _ in args] == [("--target",), ("--prune-fraction",), ("--steps",), ("--lr",),
                                            ("--batch-size",), ("--rewind",), ("--scope",), ("--seed",), ("--limit",)]
    parser = _parser(args)
    assert from_args(LTHConfig, parser.parse_args([])) == LTHConfig()
    assert from_args(LTHConfig, parser.parse_args(["--steps", "7", "--rewind", "step:3"])) == \
        LTHConfig(steps=7, rewind="step:3")
    for bad in (["--target", "80"], ["--steps", "0"]):
        try:
            parser.parse_args(bad)
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{bad} was accepted")
    lottery = _parser(config_args(LotteryTrainConfig, scorer={"flags": ("--score",)},
                                  exclude_from_decay={"flags": ("--decay-all",)}))
    parsed = from_args(LotteryTrainConfig, lottery.parse_args(["--score", "rollout", "--decay-all", "--block", "1"]))
    assert parsed == LotteryTrainConfig(scorer="rollout", exclude_from_decay=False, scoring=PatchScoring(block=1))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 15), extra=st.integers(1, 16), requested=st.floats(0.0, 0.99))
def test_a_pruner_owns_its_effective_sparsity(n, extra, requested):
    m = n + extra
    nm = PRUNERS["nm"]
    assert nm.effective_sparsity(requested, {"n": n, "m": m}) == round(1 - n / m, 6)
    assert nm.option_values({"n": n, "m": m}) == {"n": n, "m": m}
    assert PRUNERS["omp"].effective_sparsity(requested) == requested
    assert PRUNERS["omp"].option_values() == {} and PRUNERS["wanda"].option_values({}) == {"calib_size": 128}
    with pytest.raises(LotusError, match="NMOptions has no setting 'seed'"):  # a name nm lacks is not dropped
        nm.option_values({"n": n, "m": m, "seed": 3})
    with pytest.raises(LotusError, match="omp has no options of its own; drop 'n'"):
        PRUNERS["omp"].effective_sparsity(requested, {"n": n})
