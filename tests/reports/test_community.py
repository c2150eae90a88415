"""The "Community & ecosystem" section from GitHub and git data: trends across runs, the
CHAOSS metrics table, the commits chart, and "not collected in this run" when offline."""

from __future__ import annotations

import json

import requests

from fwsurvey.collectors.git_history import GitHistoryCollector
from fwsurvey.collectors.github import GitHubCollector
from fwsurvey.collectors.metrics import CommunityMetricsUnit
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.reports.render import render_report
from fwsurvey.stage import StageContext, run_unit
from fwsurvey.store import Store
from tests.collectors.test_git_history import config_with_clone, history  # noqa: F401
from tests.collectors.test_github import FakeGitHub, body
from tests.conftest import FIXED_NOW
from tests.reports.test_report import png_size


def github_run(store: Store, config, api: FakeGitHub, stars: int | None = None) -> int:
    if stars is not None:
        repo = json.loads(body("repo.json"))
        repo["stargazers_count"] = stars
        api.routes[("/repos/google/trax", 1)] = [(200, {}, json.dumps(repo))]
    run_id = store.start_run("collect", ["collect"], {})
    collect_source(store, run_id, GitHubCollector(config, now=lambda: FIXED_NOW,
                                                  sleep=lambda s: None))
    return run_id


def test_section_shows_metrics_trend_and_says_when_offline(write_config, history,  # noqa: F811
                                                           tmp_path):
    import responses

    repo, _ = history
    config = config_with_clone(write_config, repo)
    store = Store(tmp_path / "s.db")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        api = FakeGitHub(rsps)
        github_run(store, config, api, stars=8000)
        collect_source(store, 1, GitHistoryCollector(config, now=lambda: FIXED_NOW))
        github_run(store, config, api, stars=8187)
        api.routes[("/repos/google/trax", 1)] = [
            requests.exceptions.ConnectionError("Name or service not known")]
        offline = github_run(store, config, api)
    # The metrics come from the stored items (the claims stage's first unit): offline, the
    # newest data held still gives them, with windows ending at that data's time.
    run_unit(StageContext(store, offline, config), "claims", CommunityMetricsUnit())
    store.finish_run(offline, "degraded")
    path = render_report(store, load_config(config.path), tmp_path / "report", run_id=offline)
    text = path.read_text(encoding="utf-8")
    section = text[text.index("### GitHub activity"):text.index("## Performance")]

    assert "**Not collected in this run**: GitHub was `unreachable`" in section
    assert "Name or service not known" in section
    assert "newest the database holds, fetched 2026-11-27T12:00:00+00:00" in section
    # The newest snapshot (run 2), never zeros, and the trend from run 1.
    assert "| Trax | `google/trax` | 8,187 | 819 | 152 | 100 | 10 | 5 | 12 |" in section
    assert "| `google/trax` | 2026-11-27 (run 1) | 8,000 | 8,187 |" in section
    assert ("| Time to first response, median (hours) | 2026-08-29 to 2026-11-27 |"
            " 10.0 (n=3); answered 75%, looked up 100% |") in section
    # Issue age covers every open issue held, and says how few of GitHub's 100 that is.
    assert ("| Age of all open issues at the data's time, median (days) | all history |"
            " 87.5 (n=3); looked up 3% |") in section
    # Who backs it: commit and author shares by email domain, bots and merges excluded.
    assert "| Trax | all history | example.com | 4 | 67% | 3 | 75% |" in section
    assert "| Trax | 2025-11-27 to 2026-11-27 | example.com | 2 | 100% | 2 | 100% |" in section
    assert "| Contributor absence factor (GitHub, all time) (contributors) |" in section
    assert "| Pull requests closed per pull request opened (ratio) |" in section
    assert "0.50 (n=2)" in section
    assert "| Contributor absence factor (git, all time) (contributors) | all history | 2 (n=4) |" \
        in section
    assert "| Median days between GitHub releases (days) | 2025-11-27 to 2026-11-27 | — (n=0) |" \
        in section
    assert "| Trax | 6 | 4 | 2024-01-15 | 2026-10-01 | 2 | 2026-11-27 (1) |" in section
    assert "![Commits per month in the local clones](commits-per-month.png)" in section
    assert png_size(path.parent / "commits-per-month.png") == (800, 450)
    assert "Download statistics: not collected yet." in section
