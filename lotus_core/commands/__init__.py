"""CLI commands: one registry, filled by the ``@command`` decorator in each module below.

A command is a function ``run(args, ctx) -> dict`` (``ctx`` is a :class:`~lotus_core.context.Context`,
or None for commands declared with ``context=False``); the dict is printed as one JSON
object with ``--json``. Add a command by decorating a function in one of these modules.

Flags of an experiment's hyperparameters are generated from its config dataclass with
:func:`config_args` (name, type, default and the field's comment as help; nested option groups
contribute their fields as flat flags), and the parsed arguments become the config again with
:func:`lotus_core.core.config.from_args`: such a flag's name, type, default and help are written once, in the
dataclass. Not every flag is generated yet: the fine-tuning recipe's flags (``finetune --epochs/--lr/--batch-size``
and ``sweep --ft-*``) are written by hand in :mod:`~lotus_core.commands.transfer` and
:mod:`~lotus_core.commands.pruning` beside :class:`~lotus_core.training.finetune.FinetuneConfig`'s fields, so
their defaults and help are typed twice and must be kept equal by hand.

The CLI starts fast because importing these modules imports no torch: heavy imports sit
inside the command functions, and options whose choices come from a registry (pruning
methods, patch scorers, ...) are given as a function returning them, called only when that
command is the one being parsed. Generated flags need the config classes (and so torch):
wrap a ``config_args(...)`` call in such a function too.
"""
from __future__ import annotations

import argparse
import contextvars
import dataclasses
import math
import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Union

Argument = tuple[tuple, dict]  # one add_argument call: (names, keyword arguments)
Arguments = Union[list[Argument], Callable[[], list[Argument]]]  # a list, or a function building it when needed

from ..core.config import config_fields, field_comments
from ..core.errors import LotusError


@dataclass
class Command:
    name: str
    help: str
    run: Callable[..., dict]
    arguments: Arguments = field(default_factory=list)
    context: bool = True  # whether the command needs a model/dataset/store Context
    check: Callable[[Any], None] | None = None  # check(args): refuses bad arguments before the Context loads

    def options(self) -> list[Argument]:
        """The command's own options (building them may import the registries they choose from)."""
        return list(self.arguments() if callable(self.arguments) else self.arguments)


COMMANDS: dict[str, Command] = {}


def arg(*names: str, **kwargs: Any) -> Argument:
    """One ``add_argument`` call, recorded for later."""
    return names, kwargs


def command(name: str, help: str, arguments: Arguments = (), context: bool = True,
            check: Callable[[Any], None] | None = None):
    """Register ``run(args, ctx) -> dict`` as CLI command ``name``; ``arguments`` is a list of
    :func:`arg` calls or a function returning one (for options whose choices need an import); ``check(args)``
    raises LotusError for arguments no run can use, before the model and data load (cli.py calls it first)."""
    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        COMMANDS[name] = Command(name, help, fn, arguments if callable(arguments) else list(arguments), context,
                                 check)
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
        elif kind in (int, float, str):  # numbers are finite and bounded even without an override
            kwargs["type"] = {int: whole_number, float: finite_number, str: str}[kind]
            if kind is int and (name == "seed" or name.endswith("_seed")):  # one range for every seed flag
                kwargs["type"] = seed
        kwargs.update(extra)
        if isinstance(kwargs["help"], str):
            kwargs["help"] = kwargs["help"].replace("%", "%%")
        out.append((tuple(flags), kwargs))
    return out


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


def finite_number(text: str) -> float:
    """argparse type of a float field without an override: any finite number."""
    return _number(text)


def whole_number(text: str) -> int:
    """argparse type of an int field without an override: a whole number of at most 10 digits."""
    value = _number(text, int)
    if abs(value) > 10 ** 10:
        raise argparse.ArgumentTypeError(f"{text} is too large; give a smaller number")
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


def comma_list(kind: type, ok: Callable[[float], bool], what: str) -> Callable[[str], tuple]:
    """argparse type: a comma list of ``kind`` values each satisfying ``ok`` (``what`` names the rule)."""
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of {what}") from None
        if not values or not all(ok(v) for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: give a comma list of {what}")
        return values
    return parse


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]}"


def output_path(path: str | None, flag: str, folder: bool = False) -> Path | None:
    """``path`` (``~`` expanded) checked as a place to write a file (``folder``: a folder, created if missing),
    before anything is computed or recorded: its folder exists and is writable, its name fits the file system,
    nothing of the other kind is in the way. Raises a one-line LotusError."""
    if path is None or path == "":
        return None
    try:
        p = Path(path).expanduser()
    except RuntimeError:  # ~name of no user
        raise LotusError(f"{flag} {path[:120]}: no such user folder {path.split('/')[0][:40]}; pass another path") from None
    try:
        name_max = os.pathconf(p.parent if p.parent.is_dir() else "/", "PC_NAME_MAX")
        if any(len(part.encode()) > name_max for part in p.parts):
            raise LotusError(f"{flag} {_shown(p)}: a name is longer than the file system's {name_max} bytes; "
                             "pass a shorter path")
        if folder and p.exists() and not p.is_dir():
            raise LotusError(f"{flag} {_shown(p)} is a file; give a folder (it is created if missing)")
        if not folder and p.is_dir():
            raise LotusError(f"{flag} {_shown(p)} is a folder; give a file path inside it")
        parent = p if folder and p.is_dir() else p.parent
        if not parent.is_dir():
            raise LotusError(f"{flag} {_shown(p)}: folder {_shown(parent)} does not exist; create it or pick "
                             "another path")
        if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise LotusError(f"{flag} {_shown(p)} cannot be written (read-only, or no permission); pass a "
                             "writable path")
    except OSError as exc:
        raise LotusError(f"{flag} {_shown(p)} cannot be used ({exc.strerror}); pass another path") from None
    return p


def enough_images(ctx: Any, fraction: float, flag: str) -> None:
    """Refuse a training-data fraction that leaves fewer images than the dataset has classes (nothing to
    learn every class from), before any run is recorded."""
    n, classes = len(ctx.train), len(ctx.train.classes)
    if fraction * n + 0.5 < classes:
        raise LotusError(f"{flag} {fraction:g} of the {n:,} training images is fewer than one image per class "
                         f"({classes}); give at least {classes / n:.2g}")


PROGRESS_STREAM: contextvars.ContextVar = contextvars.ContextVar("lotus_progress_stream", default=None)
"""Where commands write their progress lines in this context (None: stderr). The notebook API sets it to
nothing for the length of one call, since its tqdm bar draws the same progress; a context variable, so no
other thread or caller sees the change (sys.stderr itself is never swapped)."""


def progress_stream() -> Any:
    """The stream for a command's progress lines: :data:`PROGRESS_STREAM` where set, else ``sys.stderr``."""
    import sys

    return PROGRESS_STREAM.get() or sys.stderr


# The modules that define commands (importing them fills COMMANDS).
from . import core  # noqa: E402,F401
from . import pruning  # noqa: E402,F401
from . import lottery  # noqa: E402,F401
from . import patches  # noqa: E402,F401
from . import report  # noqa: E402,F401
from . import transfer  # noqa: E402,F401
from . import speed  # noqa: E402,F401
