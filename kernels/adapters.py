"""The frameworks the kernels can train, each behind one :class:`FrameworkAdapter`.

Adding a framework to the trainings takes two things and touches nothing else:

1. one adapter, a :class:`~fwsurvey.kernels.framework.FrameworkAdapter` subclass in
   ``kernels/<framework>_adapter.py`` (its modes, dynamic-shape variants, versions, step,
   compile counter, memory, data-parallel engine...), registered in :data:`ADAPTERS` below;
2. its ``kernels/<task>/<framework>_impl.py`` files, one per task it implements.

The harness and the job matrix never name a framework: a test checks they hold no
framework key or mode name (tests/kernels/test_adapters.py).
"""

from __future__ import annotations

from fwsurvey.kernels.framework import FrameworkAdapter
from fwsurvey.kernels.jax_adapter import JaxAdapter
from fwsurvey.kernels.pytorch_adapter import PyTorchAdapter
from fwsurvey.kernels.trax_adapter import TraxAdapter

#: Every framework with an adapter, by key. The order is the dynamic experiment's run order.
ADAPTERS: dict[str, FrameworkAdapter] = {
    adapter.name: adapter for adapter in (PyTorchAdapter(), JaxAdapter(), TraxAdapter())}

#: The modes of every framework: how the same implementation is run.
MODES: dict[str, tuple[str, ...]] = {name: a.mode_names for name, a in ADAPTERS.items()}


def adapter_for(framework: str) -> FrameworkAdapter:
    """The adapter of ``framework``, or a ValueError naming the frameworks that have one."""
    try:
        return ADAPTERS[framework]
    except KeyError:
        raise ValueError(f"{framework!r} is not a framework with an adapter; known: "
                         f"{', '.join(sorted(ADAPTERS))}") from None
