"""The Markdown report, rendered from a database built in the test, compared to a snapshot."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import requests
import responses

from fwsurvey.config import load_config
from fwsurvey.pipeline import run_survey
from fwsurvey.reports.render import render_report
from fwsurvey.store import Store
from tests.conftest import FIXED_NOW, INDEX

SNAPSHOT = Path(__file__).parent / "snapshots" / "report.md"


def fixed_clock(cls, config):
    return cls(config, now=lambda: FIXED_NOW)


def normalise_runs(db: Path) -> None:
    """Pin what differs between machines and moments (times, platform, versions)."""
    store = Store(db)
    with store.db.atomic():
        store.db.execute(
            "UPDATE runs SET started_at = '2026-11-27T12:00:00+00:00',"
            " finished_at = CASE WHEN finished_at IS NULL THEN NULL"
            " ELSE '2026-11-27T12:00:05+00:00' END,"
            " platform = 'Linux-x86_64', python_version = '3.11.7', tool_version = '0.1.0',"
            " versions = ?", [json.dumps({"python": "3.11.7", "pypi-simple": "1.8.0",
                                          "torch": None})])
        store.db.execute("UPDATE run_sources SET started_at = '2026-11-27T12:00:01+00:00',"
                         " finished_at = '2026-11-27T12:00:02+00:00'")
        store.db.execute("UPDATE item_errors SET at = '2026-11-27T12:00:02+00:00'")
    store.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_matches_snapshot(write_config, pypi_index, tmp_path):
    config = load_config(write_config())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=("collect",), make_collector=fixed_clock)
    normalise_runs(db)
    store = Store(db)
    path = render_report(store, config, tmp_path / "report")
    store.close()

    text = path.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    # The chart the report links to exists and is a real PNG of the configured size.
    assert "![Cumulative final releases on PyPI per framework](releases.png)" in text
    assert png_size(path.parent / "releases.png") == (800, 450)


def test_report_says_when_a_source_was_not_collected(write_config, pypi_index, tmp_path):
    config = load_config(write_config())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=("collect",), make_collector=fixed_clock)
    pypi_index.reset()  # the registry goes away
    pypi_index.add(responses.GET, INDEX + "simple/trax/",
                   body=requests.exceptions.ConnectionError("Name or service not known"))
    second = run_survey(config, db, stages=("collect", "report"), make_collector=fixed_clock,
                        report_dir=tmp_path / "report")
    assert second.status == "degraded"
    text = second.report.read_text(encoding="utf-8")
    assert "**Not collected in this run**: PyPI was `unreachable`" in text
    assert "Name or service not known" in text
    assert "newest the database holds, fetched 2026-11-27T12:00:00+00:00" in text
    # The numbers shown are run 1's, never zeros.
    assert "| Trax | `trax` | 1.4.1 | 2019-10-08 | 2021-10-26 | 24 |" in text
    assert "2026-11-27 (1) |" in text


def test_report_without_any_run_is_a_clear_error(write_config, tmp_path):
    config = load_config(write_config())
    store = Store(tmp_path / "s.db")
    try:
        render_report(store, config, tmp_path / "report")
    except LookupError as exc:
        assert "holds no run yet" in str(exc)
    else:
        raise AssertionError("expected LookupError")
