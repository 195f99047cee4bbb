"""CLI commands: one registry, filled by the ``@command`` decorator in each module below.

A command is a function ``run(args, ctx) -> dict`` (``ctx`` is a :class:`~lotus_core.core.context.Context`,
or None for commands declared with ``context=False``); the dict is printed as one JSON
object with ``--json``. Add a command by decorating a function in one of these modules.

Flags of an experiment's hyperparameters are generated from its config dataclass with
:func:`config_args` (name, type, default and the field's comment as help; nested option groups
contribute their fields as flat flags), and the parsed arguments become the config again with
:func:`lotus_core.core.config.from_mapping`, so a flag is never typed twice.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.config import config_fields, field_comments


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


def config_args(cls: type, skip: tuple[str, ...] = (), **overrides: Callable | dict) -> list[tuple[tuple, dict]]:
    """``--flag`` arguments for the fields of the config dataclass ``cls`` (see the module docstring).

    ``--field-name`` takes the field's type (a bool field is a switch: ``--name`` when it defaults to False, ``--no-name`` when to True), its
    default and its comment as help; a nested dataclass field contributes its own fields. An override
    is an argparse type (e.g. :func:`fraction`) or a dict of ``add_argument`` keywords (``flags`` renames
    the flag, keeping the field name as its destination); ``skip`` leaves fields out.
    """
    out, help_of = [], field_comments(cls)
    for name, (f, kind) in config_fields(cls).items():
        if name in skip:
            continue
        if dataclasses.is_dataclass(kind):
            out += config_args(kind, skip, **overrides)
            continue
        extra = overrides.get(name, {})
        extra = {"type": extra} if callable(extra) else dict(extra)
        flags = extra.pop("flags", (f"--{name.replace('_', '-')}",))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs = {"dest": name, "default": default, "help": help_of.get(name, "")}
        if kind is bool:  # a switch that flips the default: --name, or --no-name for a default of True
            kwargs["action"] = "store_true" if default is False else "store_false"
            if default is True and "flags" not in overrides.get(name, {}):
                flags = (f"--no-{name.replace('_', '-')}",)
        elif kind in (int, float, str):
            kwargs["type"] = kind
        kwargs.update(extra)
        if isinstance(kwargs["help"], str):
            kwargs["help"] = kwargs["help"].replace("%", "%%")
        out.append((tuple(flags), kwargs))
    return out


def _number(text: str, kind: type, what: str) -> float | int:
    """``kind(text)``, or an argparse error saying ``text`` is not ``what``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = _number(text, float, "a number; give a fraction such as 0.5")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1); give a fraction such as 0.5 (not a percentage)")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


# The modules that define commands (importing them fills COMMANDS).
from . import core  # noqa: E402,F401
from . import pruning  # noqa: E402,F401
from . import lottery  # noqa: E402,F401
from . import patches  # noqa: E402,F401
from . import report  # noqa: E402,F401
