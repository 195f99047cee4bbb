"""Experiment configs: frozen dataclasses with a comment per field.

:func:`from_mapping` is the one way a config is rebuilt from a mapping (a stored run's full
config, parsed CLI arguments, the dict a background job receives): nested config dataclasses
are rebuilt from their dicts (or, when absent, from the same flat mapping, as the CLI parses
them), tuple fields from lists; other keys are ignored and missing fields keep their defaults.
:func:`field_comments` reads each field's trailing comment, which is its documentation and the
help text of the CLI flag generated from it (:func:`lotus_core.commands.config_args`), after
open_lth's ``hparams`` help strings.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def config_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Field name -> (field, resolved type annotation) of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def from_mapping(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` rebuilt from ``values`` (see the module docstring)."""
    kwargs = {}
    for name, (_, kind) in config_fields(cls).items():
        if dataclasses.is_dataclass(kind):
            nested = values.get(name)
            kwargs[name] = nested if isinstance(nested, kind) else from_mapping(
                kind, nested if isinstance(nested, Mapping) else values)
        elif name in values:
            value = values[name]
            is_tuple = kind is tuple or typing.get_origin(kind) is tuple
            kwargs[name] = tuple(value) if is_tuple and isinstance(value, list) else value
    return cls(**kwargs)


@functools.lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment after it in the class body (empty when there is none or no source)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                line = lines[node.end_lineno - 1]
                out[node.target.id] = line.split("  # ", 1)[1].strip() if "  # " in line else ""
    return out
