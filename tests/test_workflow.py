"""The scheduled GitHub Actions workflow: it parses, runs weekly and on demand, never overlaps,
resumes from the previous database and keeps the database, report and site."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).parent.parent / ".github" / "workflows" / "survey.yml"


def load() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    data["on"] = data.pop(True, None) or data.get("on")
    return data


def steps() -> list[dict]:
    return load()["jobs"]["survey"]["steps"]


def test_runs_weekly_and_on_demand_never_two_at_once():
    data = load()
    (schedule,) = data["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit()  # once a week
    assert "workflow_dispatch" in data["on"]
    assert data["concurrency"]["group"] and data["concurrency"]["cancel-in-progress"] is False


def test_runs_the_survey_with_the_token_from_secrets_only():
    run = [s for s in steps() if s.get("run") == "make run"]
    assert len(run) == 1
    assert run[0]["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    text = WORKFLOW.read_text()
    # The secret goes into env: only, and no script prints it.
    assert all("secrets." not in s.get("run", "") for s in steps())
    assert not re.search(r"(echo|printf|cat)[^\n]*(GITHUB_TOKEN|GH_TOKEN)", text)


def test_python_and_a_cache_keyed_on_the_pins():
    uses = {s.get("uses", "").split("@")[0]: s for s in steps()}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    cache = uses["actions/cache"]["with"]
    assert ".venv" in cache["path"] and "constraints.txt" in cache["key"]


def test_restores_the_previous_database_before_the_run_and_keeps_the_outputs():
    names = [s.get("name", s.get("uses")) for s in steps()]
    restore = next(s for s in steps() if s.get("uses", "").startswith("actions/download-artifact"))
    assert restore["with"]["name"] == "survey-db" and restore["with"]["path"] == "out/"
    assert names.index(restore["name"]) < names.index("Run the survey")
    uploads = {s["with"]["name"]: s["with"]["path"] for s in steps()
               if s.get("uses", "").startswith("actions/upload-artifact")}
    publish = next(s for s in steps() if "fwsurvey publish" in s.get("run", ""))
    site = publish["run"].split("publish", 1)[1].split()[0]
    assert uploads == {"survey-db": f"{site}/fwsurvey.db", "survey-report": "out/report/",
                       "survey-site": f"{site}/"}
    assert "--force" in publish["run"]
