"""What the hybrid-code experiment observes in each job (harness code of the task, not scored).

Called by the harness after the job (``fwsurvey.kernels.harness.run_checks``), in the job's
own process, so the framework is already imported. Per framework and mode it records:

* ``runs``: whether the step with SciPy inside ran through in this mode (eager, torch.compile,
  jit), with the error where it did not;
* ``graph_breaks``: torch.compile's graph breaks in the job (None where the mode has no
  graph-breaking compiler: a tracer refuses instead, or nothing is compiled);
* ``dlpack_zero_copy``: whether arrays cross between the framework and NumPy through DLPack
  without a copy, each way, read off the buffers' addresses.

The overhead against the pure-framework model (``kernels/hybrid_pure``) is a ratio of two
jobs' step times, read from the store (both tasks' samples); it judges no claim until it has
an interval (claims.toml, arch.hybrid).
Whether a file had to route the call through a host-callback API is read from the files by
the analyzers (claims.toml, ``hybrid_callback``), one list of such APIs for every side.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

#: NumPy guarantees this alignment of its buffers; DLPack importers may want more (64 bytes).
NUMPY_ALIGNMENT = 16


def _buffer(n: int, offset: int) -> np.ndarray:
    """``n`` float32 values whose buffer starts ``offset`` bytes past a 64-byte boundary, so
    the alignment the importer sees is chosen, not left to the allocator."""
    raw = np.zeros(n * 4 + 128, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    out = raw[start:start + n * 4].view(np.float32)
    out[:] = np.arange(n, dtype=np.float32)
    return out


def dlpack_exchange(framework: str, device: str) -> dict[str, bool | str]:
    """Each direction of a DLPack exchange with NumPy: True when the buffer is shared (same
    address), False when copied, the error's text when the exchange failed."""
    n = 1024
    results: dict[str, bool | str] = {}
    if framework == "pytorch":
        import torch

        def out_of() -> bool:
            t = torch.arange(n, dtype=torch.float32, device=device)
            return bool(np.from_dlpack(t).ctypes.data == t.data_ptr())

        def into(a: np.ndarray) -> bool:
            return bool(torch.from_dlpack(a).data_ptr() == a.ctypes.data)
    else:  # JAX arrays: JAX itself and Trax
        import jax.numpy as jnp

        def out_of() -> bool:
            x = jnp.arange(n, dtype=jnp.float32)
            return bool(np.from_dlpack(x).ctypes.data == x.unsafe_buffer_pointer())

        def into(a: np.ndarray) -> bool:
            return bool(jnp.from_dlpack(a).unsafe_buffer_pointer() == a.ctypes.data)

    cases = {"to_numpy": out_of,
             "from_numpy_64B_aligned": lambda: into(_buffer(n, 0)),
             f"from_numpy_{NUMPY_ALIGNMENT}B_aligned": lambda: into(_buffer(n, NUMPY_ALIGNMENT))}
    for name, case in cases.items():
        try:
            results[name] = case()
        except Exception as exc:  # e.g. device memory NumPy cannot import
            results[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return results


def checks(framework: str, mode: str, spec: dict[str, Any], workdir: pathlib.Path,
           result: dict[str, Any]) -> list[dict[str, Any]]:
    """The experiment's rows for one job (see the module's docstring)."""
    ran = result.get("status") == "ok"
    rows: list[dict[str, Any]] = [{
        "check": "runs", "ok": ran, "value": 1.0 if ran else 0.0, "unit": "1 = runs",
        "detail": None if ran else f"{result.get('status')}: "
                                   f"{str(result.get('error') or '')[-500:]}"}]
    breaks = result.get("graph_breaks")
    rows.append({"check": "graph_breaks", "ok": None, "value": breaks, "unit": "breaks",
                 "detail": None if breaks is not None
                 else "not applicable: no graph-breaking compiler in this mode"})
    exchange = dlpack_exchange(framework, spec.get("device", "cpu"))
    shared = sum(1 for v in exchange.values() if v is True)
    said = {True: "shared", False: "copied"}
    rows.append({"check": "dlpack_zero_copy", "ok": shared == len(exchange),
                 "value": float(shared), "unit": f"of {len(exchange)} exchanges zero-copy",
                 "detail": "; ".join(f"{k}: {said.get(v, v) if isinstance(v, bool) else v}"
                                     for k, v in exchange.items())})
    return rows
