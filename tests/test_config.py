"""Configs: one rebuilder (from_mapping), field comments, and CLI flags generated from the dataclasses."""
import argparse
import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lotus_core.commands import config_args, fraction, positive_int
from lotus_core.core.config import field_comments, from_mapping
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


@settings(max_examples=50, deadline=None)
@given(target=st.floats(0.01, 0.99), steps=st.integers(1, 10_000), seed=st.integers(0, 2**31),
       rewind=st.sampled_from(["pretrained", "step:1", "step:50"]), block=st.integers(-12, 11),
       scorers=st.lists(st.sampled_from(["cls", "rollout", "random"]), min_size=1, max_size=3))
def test_configs_survive_the_store_round_trip(target, steps, seed, rewind, block, scorers):
    """What a stored run or a queued job holds (JSON: tuples become lists) rebuilds the same config."""
    for cfg in (LTHConfig(target=target, steps=steps, seed=seed, rewind=rewind),
                ControlConfig(LTHConfig(target=target, steps=steps), round=2, seed=seed),
                FidelityConfig(scorers=tuple(scorers), scoring=PatchScoring(block=block), seed=seed),
                SweepConfig(methods=tuple(scorers), sparsities=(0.1, target))):
        stored = json.loads(json.dumps({"model": "m@1", "kind": "x", **dataclasses.asdict(cfg)}))
        assert from_mapping(type(cfg), stored) == cfg


def test_nested_groups_are_rebuilt_from_flat_values_and_comments_document_fields():
    cfg = from_mapping(LotteryTrainConfig, {"block": 2, "fuse": "max", "epochs": 3, "unknown": 1})
    assert cfg.scoring == PatchScoring(block=2, fuse="max") and cfg.epochs == 3
    assert field_comments(LTHConfig)["prune_fraction"] == "fraction of the *remaining* scoped weights pruned per round"
    assert field_comments(LotteryTrainConfig)["scoring"].startswith("how the scorer reads the base model")
    assert set(field_comments(PatchScoring)) == {"block", "fuse", "discard_ratio", "ig_steps"}


def test_generated_flags_parse_to_the_default_config_and_keep_validators():
    args = config_args(LTHConfig, target=fraction, steps=positive_int)
    assert [names for names, _ in args] == [("--target",), ("--prune-fraction",), ("--steps",), ("--lr",),
                                            ("--batch-size",), ("--rewind",), ("--scope",), ("--seed",), ("--limit",)]
    parser = _parser(args)
    assert from_mapping(LTHConfig, vars(parser.parse_args([]))) == LTHConfig()
    assert from_mapping(LTHConfig, vars(parser.parse_args(["--steps", "7", "--rewind", "step:3"]))) == \
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
    parsed = from_mapping(LotteryTrainConfig, vars(lottery.parse_args(["--score", "rollout", "--decay-all",
                                                                       "--block", "1"])))
    assert parsed == LotteryTrainConfig(scorer="rollout", exclude_from_decay=False, scoring=PatchScoring(block=1))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 15), extra=st.integers(1, 16), requested=st.floats(0.0, 0.99))
def test_a_pruner_owns_its_effective_sparsity(n, extra, requested):
    m = n + extra
    nm = PRUNERS["nm"]
    assert nm.effective_sparsity(requested, {"n": n, "m": m}) == round(1 - n / m, 6)
    assert nm.option_values({"n": n, "m": m, "seed": 3}) == {"n": n, "m": m}
    assert PRUNERS["omp"].effective_sparsity(requested, {"n": n, "m": m}) == requested
    assert PRUNERS["omp"].option_values({"n": n}) == {} and PRUNERS["wanda"].option_values({}) == {"calib_size": 128}
