"""Every experiment kind LOTUS stores, by explicit import of the module that registers it.

Each module below calls :func:`~lotus_core.results.registry.register_experiment` next to its
experiment (as timm's ``register_model`` sits next to each model); importing this module fills
:data:`~lotus_core.results.registry.EXPERIMENTS`. A new kind is one ``register_experiment`` line in
its module plus one import here; ``tests/results/test_registry.py`` fails when a registering module is
missing from this list.
"""
from __future__ import annotations

from .lottery import controls, core_ticket, instability, issp, lota, lth, rigl, supermask, ticket_transfer  # noqa: F401
from .patches import fidelity, ticket_training  # noqa: F401
from .pruning import sensitivity, sweep  # noqa: F401
from .speed import accuracy, run  # noqa: F401
from . import context  # noqa: F401  (the dense evaluation, "evaluate")
from .training import finetune  # noqa: F401
from .views import catalog  # noqa: F401
