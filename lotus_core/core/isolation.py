"""Process-global state: the one place that touches it, so that sessions never see each other.

Dashboard sessions (one script thread each), the background worker's jobs and a sweep's units
share one Python process and one copy of torch. Anything that changes torch or timm for the
whole process changes it under another session's running computation: timm's
``AttentionExtract(method="fx")`` traced the model with ``torch.fx``, which patches
``nn.Module.__call__`` process-wide while it traces, and a sweep's forward pass in another
thread failed with ``module is not installed as a submodule`` (issue 25). So LOTUS keeps to
these rules (``tests/core/test_isolation.py`` greps the package for every setter below):

- **No torch.fx tracing, no** ``timm.layers.set_fused_attn``. Attention maps are read with forward
  hooks on a private copy of the model's module tree whose attention modules take the non-fused
  path (:mod:`lotus_core.patches.attention`); a scorer that needs plain attention sets
  ``fused_attn = False`` on its own copy (``pruning/grasp.py``).
- **torch's global RNG is seeded only by** :func:`seeded`. timm initialises new layers from the
  global generator (no ``generator=`` argument), so a seeded model or head is built inside
  ``seeded(seed)``: a process-wide lock serialises the seeded blocks (two sessions seeding at once
  would interleave their draws) and ``torch.random.fork_rng`` restores the generator afterwards,
  so code outside sees the stream it had. Everything else draws from its own ``torch.Generator``.
- **No** ``torch.set_default_dtype``/``set_default_device``, **no global autocast**: bf16 autocast
  is the ``torch.autocast`` context manager (:func:`lotus_core.core.device.autocast`), whose state
  is thread-local.
- torch's intra-op thread count is process-global too; :mod:`lotus_core.core.device` owns it
  (``use_compute_threads``: the same count for every thread of a process).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_GLOBAL_RNG = threading.RLock()  # held by every block that seeds torch's global generator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Within the block torch's global generator (CPU, and initialised CUDA devices) starts from ``seed``;
    no other thread seeds it meanwhile, and its previous state is restored on exit.

    Draws inside the block equal those after ``torch.manual_seed(seed)`` in a fresh process.
    """
    import torch  # not at the top: the CLI starts without torch

    with _GLOBAL_RNG:
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=cuda):
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.manual_seed_all(seed)
            yield


__all__ = ["seeded"]
