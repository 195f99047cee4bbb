"""CLI commands: one registry, filled by the ``@command`` decorator in each module below.

A command is a function ``run(args, ctx) -> dict`` (``ctx`` is a :class:`~lotus_core.core.context.Context`,
or None for commands declared with ``context=False``); the dict is printed as one JSON
object with ``--json``. Add a command by decorating a function in one of these modules.

The CLI starts fast because importing these modules imports no torch: heavy imports sit
inside the command functions, and options whose choices come from a registry (pruning
methods, patch scorers, ...) are given as a function returning them, called only when that
command is the one being parsed.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Union

Argument = tuple[tuple, dict]  # one add_argument call: (names, keyword arguments)
Arguments = Union[list[Argument], Callable[[], list[Argument]]]  # a list, or a function building it when needed


@dataclass
class Command:
    name: str
    help: str
    run: Callable[..., dict]
    arguments: Arguments = field(default_factory=list)
    context: bool = True  # whether the command needs a model/dataset/store Context

    def options(self) -> list[Argument]:
        """The command's own options (building them may import the registries they choose from)."""
        return list(self.arguments() if callable(self.arguments) else self.arguments)


COMMANDS: dict[str, Command] = {}


def arg(*names: str, **kwargs: Any) -> Argument:
    """One ``add_argument`` call, recorded for later."""
    return names, kwargs


def command(name: str, help: str, arguments: Arguments = (), context: bool = True):
    """Register ``run(args, ctx) -> dict`` as CLI command ``name``; ``arguments`` is a list of
    :func:`arg` calls or a function returning one (for options whose choices need an import)."""
    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        COMMANDS[name] = Command(name, help, fn, arguments if callable(arguments) else list(arguments), context)
        return fn
    return register


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a fraction such as 0.5") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1); give a fraction such as 0.5 (not a percentage)")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


# The modules that define commands (importing them fills COMMANDS).
from . import core  # noqa: E402,F401
from . import pruning  # noqa: E402,F401
from . import lottery  # noqa: E402,F401
from . import patches  # noqa: E402,F401
from . import report  # noqa: E402,F401
