"""A model's classifier head: what it was trained on (:class:`Head`), read from and written to a
checkpoint's ``lotus_head`` header entry, and a fresh seeded head for another class count (:func:`new_head`).

A head timm or LOTUS re-initialised is ``new`` (seeded, so two processes get the same head): nothing prunes or
reports such a model as if it were trained (:meth:`lotus_core.context.Context.require_trained_head`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..core.errors import LotusError
from ..core.isolation import seeded
from .arch import ARCH_INT_BOUNDS, parse_meta_json


HEAD_KEY = "lotus_head"  # checkpoint header entry holding the Head as JSON


@dataclass(frozen=True)
class Head:
    """What a model's classifier head was trained on.

    ``state`` is ``"trained"`` (by LOTUS: on ``dataset``, whose class names are ``classes``),
    ``"pretrained"`` (kept from the hub or a weights file; its classes are not known here) or
    ``"new"`` (re-initialised at random from ``seed`` for ``num_classes`` classes: not trained).
    """

    state: str  # "trained" | "pretrained" | "new"
    num_classes: int  # output units of the head
    dataset: str | None = None  # what a "trained" head was trained on
    classes: tuple[str, ...] | None = None  # class names of that dataset, in label order
    seed: int | None = None  # seed of a "new" head's initialisation

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "classes": list(self.classes) if self.classes else None})

    @classmethod
    def from_json(cls, text: str, source: str = "checkpoint") -> "Head":
        """The head described by a checkpoint's ``lotus_head`` entry, every field checked (LotusError)."""
        return parse_head(parse_meta_json(text, HEAD_KEY, source), source)

    def problem(self, classes: list[str]) -> str | None:
        """Why this head cannot be used as-is on a dataset with ``classes`` (None when it can)."""
        if self.state == "new":
            return "head not trained on this dataset: fine-tune it first"
        if self.num_classes != len(classes):
            return (f"head not trained on this dataset ({self.num_classes} outputs, the dataset has "
                    f"{len(classes)} classes): fine-tune it first")
        if self.state == "trained" and self.classes is not None and tuple(self.classes) != tuple(classes):
            return (f"head not trained on this dataset (trained on {self.dataset}: "
                    f"{', '.join(self.classes[:3])}...): fine-tune it first")
        return None
HEAD_STATES = ("trained", "pretrained", "new")
MAX_SEED = 2 ** 32 - 1  # every seed, on the CLI, in pages and in checkpoint metadata (numpy's range)


def parse_head(d: Any, source: str) -> "Head":
    """``d`` (a decoded ``lotus_head``) as a :class:`Head`: known keys only, a valid state, a class count
    in 1..100000, class names (as many as outputs) and a seed in range; LotusError otherwise."""
    def bad(what: str) -> LotusError:
        return LotusError(f"{source}: lotus_head {what}; re-save the checkpoint (or pass its weights without "
                          "the header)")

    if not isinstance(d, dict):
        raise bad(f"must be a JSON object, not {type(d).__name__}")
    extra = sorted(set(d) - {"state", "num_classes", "dataset", "classes", "seed"})
    if extra:
        raise bad(f"carries unsupported key {extra[0][:40]!r}")
    state, n, dataset, classes, seed = (d.get(k) for k in ("state", "num_classes", "dataset", "classes", "seed"))
    if state not in HEAD_STATES:
        raise bad(f"state {str(state)[:40]!r} is not one of {', '.join(HEAD_STATES)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= ARCH_INT_BOUNDS["num_classes"][1]:
        raise bad(f"num_classes={str(n)[:40]!r} is outside 1..{ARCH_INT_BOUNDS['num_classes'][1]}")
    if dataset is not None and (not isinstance(dataset, str) or len(dataset) > 4096):
        raise bad("dataset is not a name")
    if classes is not None and (not isinstance(classes, list) or len(classes) != n
                                or not all(isinstance(c, str) and len(c) <= 4096 for c in classes)):
        raise bad(f"classes is not a list of {n} class names")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise bad(f"seed={str(seed)[:40]!r} is outside 0..{MAX_SEED}")
    return Head(state, n, dataset, tuple(classes) if classes else None, seed)


def new_head(model: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """Replace ``model``'s classifier by a fresh one for ``num_classes``, initialised from ``seed``; returned."""
    with seeded(seed):
        model.reset_classifier(num_classes)
    model.lotus_head = Head("new", num_classes, seed=seed)
    if getattr(model, "lotus_arch", None):
        model.lotus_arch = {**model.lotus_arch, "num_classes": num_classes}
    return model
