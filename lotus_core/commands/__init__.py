"""CLI commands: one registry, filled by the ``@command`` decorator in each module below.

A command is a function ``run(args, ctx) -> dict`` (``ctx`` is a :class:`~lotus_core.core.context.Context`,
or None for commands declared with ``context=False``); the dict is printed as one JSON
object with ``--json``. Add a command by decorating a function in one of these modules.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Command:
    name: str
    help: str
    run: Callable[..., dict]
    arguments: list[tuple[tuple, dict]] = field(default_factory=list)
    context: bool = True  # whether the command needs a model/dataset/store Context


COMMANDS: dict[str, Command] = {}


def arg(*names: str, **kwargs: Any) -> tuple[tuple, dict]:
    """One ``add_argument`` call, recorded for later."""
    return names, kwargs


def command(name: str, help: str, arguments: list[tuple[tuple, dict]] = (), context: bool = True):
    """Register ``run(args, ctx) -> dict`` as CLI command ``name``."""
    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        COMMANDS[name] = Command(name, help, fn, list(arguments), context)
        return fn
    return register


def _number(text: str, kind: type = float) -> float | int:
    """``text`` as a finite number of ``kind`` (argparse's one-line error otherwise)."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def _float_in(name: str, lo: float, hi: float, example: str, low_open: bool = False,
              high_open: bool = False) -> Callable[[str], float]:
    """An argparse type ``name``: a finite number in [lo, hi] (``low_open``/``high_open``: that end excluded)."""
    interval = f"{'(' if low_open else '['}{lo:g}, {hi:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        value = _number(text)
        if not ((lo < value if low_open else lo <= value) and (value < hi if high_open else value <= hi)):
            raise argparse.ArgumentTypeError(f"{text} is outside {interval}; give {example}")
        return value

    parse.__name__, parse.__doc__ = name, f"argparse type: a finite number in {interval} ({example})."
    return parse


fraction = _float_in("fraction", 0, 1, "a fraction such as 0.5 (not a percentage)", high_open=True)
share = _float_in("share", 0, 1, "a fraction such as 0.2 (not a percentage)", low_open=True)  # data fraction, top-k
tolerance = _float_in("tolerance", 0, 1, "an absolute fraction such as 0.01")  # accuracy tolerance (0.01 = 1 point)
resolution = _float_in("resolution", 0, 0.5, "a sparsity step such as 0.01", low_open=True)
learning_rate = _float_in("learning_rate", 0, 10, "a learning rate such as 1e-4", low_open=True)
weight_decay = _float_in("weight_decay", 0, 10, "a weight decay such as 0.05")


MAX_COUNT = 10_000_000  # steps, images, ...: a larger count is a typo, not a plan


def positive_int(text: str) -> int:
    """argparse type: an integer in 1..10,000,000."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text} is more than {MAX_COUNT:,}; give a smaller number")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer in 0..10,000,000."""
    value = _number(text, int)
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..{MAX_COUNT:,}; give a count such as 100 (0 = none)")
    return value


def seed(text: str) -> int:
    """argparse type: a random seed in 0..2**32-1."""
    value = _number(text, int)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..{2 ** 32 - 1}; give a seed such as 0")
    return value


# The modules that define commands (importing them fills COMMANDS).
from . import core  # noqa: E402,F401
from . import pruning  # noqa: E402,F401
from . import lottery  # noqa: E402,F401
from . import patches  # noqa: E402,F401
from . import report  # noqa: E402,F401
