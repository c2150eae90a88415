"""The "Community & ecosystem" section: release history (PyPI) so far."""

from __future__ import annotations

from typing import Any

from fwsurvey.reports.charts import releases_chart
from fwsurvey.reports.sections import SectionInput

RELEASES_CHART = "releases.png"


def community_section(inp: SectionInput) -> dict[str, Any]:
    """PyPI cadence per package (newest snapshot as of the run) and the releases chart."""
    names = inp.names()
    order = {key: i for i, key in enumerate(inp.config.frameworks)}
    # Only the packages of the frameworks configured now, in configuration order.
    packages = sorted((p for p in inp.latest_as_of_run("pypi_packages", "package")
                       if p["framework"] in order),
                      key=lambda p: (order[p["framework"]], p["package"]))
    for p in packages:
        p["framework_name"] = names[p["framework"]]

    chart = None
    if packages:
        frameworks = {p["framework"] for p in packages}
        releases = inp.store.query(
            "SELECT framework, uploaded_at FROM pypi_releases WHERE is_prerelease = 0"
            " AND yanked = 0 AND uploaded_at IS NOT NULL AND first_run_id <= ?"
            " ORDER BY uploaded_at", [inp.run_id])
        releases_chart(
            [(names[r["framework"]], r["uploaded_at"]) for r in releases
             if r["framework"] in frameworks],
            inp.out_dir / RELEASES_CHART,
            title=f"Final releases on PyPI (run {inp.run_id})",
            order=[names[k] for k in inp.config.frameworks],
        )
        chart = RELEASES_CHART
    return {
        "measured": bool(packages),
        "pypi": {
            "packages": packages,
            "this_run": inp.source_outcome("pypi"),
            "newest_fetched_at": max((p["fetched_at"] for p in packages), default=None),
            "chart": chart,
        },
    }
