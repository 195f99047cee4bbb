"""Experiment configs: frozen dataclasses with a comment per field.

:func:`from_mapping` is the one way a config is rebuilt from a mapping (the dict a background
job receives, a stored run's parameters): nested config dataclasses are rebuilt from their
dicts, tuple fields from lists, missing fields keep their defaults, and a key that is no field
is refused with one line (a value that would otherwise never arrive anywhere; open_lth's
``create_from_args`` refuses a missing one likewise). :func:`from_args` reads a config's own
fields out of parsed CLI arguments (nested groups from the same flat flags), which also hold the
command's other flags. :func:`from_stored` rebuilds a config read back from the store, where an
older LOTUS may have written fields since retired: the class's ``upgrade_stored(values)`` hook
maps those, by a documented list, before the strict rebuild.
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

from .errors import LotusError

T = TypeVar("T")


def config_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Field name -> (field, resolved type annotation) of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def _is_tuple(kind: Any) -> bool:
    return kind is tuple or typing.get_origin(kind) is tuple


def from_mapping(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` rebuilt from ``values`` (see the module docstring); a key that is not a field of ``cls`` is a
    LotusError naming it."""
    fields = config_fields(cls)
    unknown = [name for name in values if name not in fields]
    if unknown:
        raise LotusError(f"{cls.__name__} has no setting {', '.join(map(repr, unknown))}; its settings are "
                         f"{', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        kind = fields[name][1]
        if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
            value = from_mapping(kind, value)
        elif _is_tuple(kind) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def from_args(cls: type[T], args: Any) -> T:
    """``cls`` from parsed CLI arguments (an argparse Namespace or a mapping of flag destinations): each field
    of ``cls`` by its own name, a nested config from the same flat arguments. The arguments hold every flag of
    the command (common options, other groups), so only ``cls``'s fields are read: each was generated from the
    field itself (:func:`lotus_core.commands.config_args`)."""
    values = args if isinstance(args, Mapping) else vars(args)
    kwargs: dict[str, Any] = {}
    for name, (_, kind) in config_fields(cls).items():
        if dataclasses.is_dataclass(kind) and not isinstance(values.get(name), (kind, Mapping)):
            kwargs[name] = from_args(kind, values)
        elif name in values:
            kwargs[name] = values[name]
    return from_mapping(cls, kwargs)


def from_stored(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` from parameters read back from the store (a run's key, a queued job): ``cls.upgrade_stored``,
    where the class has one, first maps the fields an older LOTUS stored and this one retired (each class
    lists its own); then :func:`from_mapping`, strict."""
    upgrade = getattr(cls, "upgrade_stored", None)
    return from_mapping(cls, upgrade(dict(values)) if upgrade is not None else values)


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
