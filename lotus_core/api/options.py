"""An API function's keywords are its CLI command's flags: each keyword is turned back into the command line
it stands for and parsed by the command's own argparse parser, so every value is checked by its flag's type and an
unknown keyword is refused (a LotusError, never SystemExit, in a notebook)."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from ..commands import Command
from ..core.errors import LotusError


class _Refusal(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # a LotusError, never SystemExit, in a notebook
        raise LotusError(f"{self.prog}: {message}")


@dataclasses.dataclass(frozen=True)
class Option:
    """One keyword of an API function: the CLI flag it stands for."""

    name: str  # the keyword: the flag without dashes, "-" as "_" (a positional: its name)
    action: argparse.Action

    @property
    def switch(self) -> bool:
        return self.action.nargs == 0

    @property
    def default(self) -> Any:
        if self.switch:
            return False
        return inspect.Parameter.empty if self.action.required else self.action.default

    def argv(self, value: Any) -> list[str]:
        """The command line giving ``value`` (a Python value; a list becomes a comma list)."""
        if self.switch:
            return [self.action.option_strings[0]] if value else []
        if self.action.nargs == "+" or isinstance(self.action, argparse._AppendAction):
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if isinstance(self.action, argparse._AppendAction):
                return [x for v in values for x in (self.action.option_strings[0], str(v))]
            texts = [str(v) for v in values]
        else:
            texts = [",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)]
        return [*self.action.option_strings[:1], *texts]


def parser_options(cmd: Command) -> tuple[argparse.ArgumentParser, list[Option]]:
    parser = _Refusal(prog=f"lotus_core.{cmd.name.replace('-', '_')}", add_help=False)
    for names, kwargs in cmd.options():
        parser.add_argument(*names, **kwargs)
    options = []
    for action in parser._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        options.append(Option((flag[2:] if flag else action.dest).replace("-", "_"), action))
    return parser, options


def namespace(cmd: Command, kwargs: dict) -> argparse.Namespace:
    """``kwargs`` parsed as ``cmd``'s command line (unknown keywords refused, every value checked by its flag)."""
    parser, options = parser_options(cmd)
    known = {o.name: o for o in options}
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise LotusError(f"{parser.prog}() has no option {unknown[0]!r}; its options: {', '.join(known)}")
    argv, positional = [], []
    for name, value in kwargs.items():
        option = known[name]
        if value is None and not option.action.required:
            continue
        words = option.argv(value)
        (argv if option.action.option_strings else positional).extend(words)
    return parser.parse_args([*argv, *positional])
