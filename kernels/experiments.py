"""What the control-flow experiments (``tree_recursion``, ``adaptive_depth``) observe in each
job: the checks their ``checks.py`` return (see :func:`fwsurvey.kernels.harness.run_checks`).

Harness code of the tasks, never scored. The approach a side takes (a static rewrite: trees
padded to a fixed length, a loop run to a fixed maximum) is read from the spec's
``static_structure`` list, not from the implementation's text; the tests check each entry
against what the implementation actually feeds its model. The padding waste is computed
from the task's generated data: the share of the positions a static rewrite computes that
hold no real node or step.
"""

from __future__ import annotations

from typing import Any


def check(name: str, ok: bool | None = None, value: float | None = None,
          unit: str | None = None, detail: str | None = None) -> dict[str, Any]:
    return {"check": name, "ok": ok, "value": value, "unit": unit, "detail": detail}


def control_flow_checks(framework: str, spec: dict[str, Any], result: dict[str, Any],
                        waste_if_static: float, static_detail: str, dynamic_detail: str
                        ) -> list[dict[str, Any]]:
    """``runs``, ``recompiles``, ``graph_breaks``, ``static_padding`` and ``padding_waste``
    for one job; ``waste_if_static`` is the data's padding share under the static rewrite."""
    ok = result.get("status") == "ok"
    error = result.get("error")
    static = framework in (spec.get("static_structure") or [])
    breaks = result.get("graph_breaks")
    return [
        check("runs", ok, detail=None if ok else (error or result.get("status"))[-500:]),
        check("recompiles", value=result.get("compiles_timed"), unit="count",
              detail="compilations during the timed windows (after the first step and "
                     "warm-up)"),
        check("graph_breaks", value=breaks, unit="count",
              detail=None if breaks is not None else "no graph-capturing compiler in this "
                                                     "mode"),
        check("static_padding", static,
              detail=static_detail if static else dynamic_detail),
        check("padding_waste", value=waste_if_static if static else 0.0, unit="share",
              detail="share of the computed positions that hold no real node or step"),
    ]
