"""``fwsurvey publish DIR``: a folder that hosts the survey read-only, made all or nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest
import requests

import fwsurvey.publish as publish
from fwsurvey import cli
from fwsurvey.config import ConfigError
from fwsurvey.lock import RunLock
from fwsurvey.publish import load_datasette_yml, metadata_for
from fwsurvey.store import Store
from tests.serving import collected_db, free_port, serving
from tests.test_datasette import assert_security_headers

REPO = Path(__file__).parent.parent
EXPECTED_FILES = {"fwsurvey.db", "metadata.json", "requirements.txt", "serve.sh", "Dockerfile",
                  "publication.json", "README.md", "report", "plugins"}


def invoke(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return info.value.code


def serve_metadata(monkeypatch, config: str, db: Path) -> dict:
    """The metadata ``fwsurvey serve`` hands Datasette (read while its snapshot exists)."""
    served = []

    def run_server(command: list[str]) -> int:
        served.append(json.loads(Path(command[command.index("--metadata") + 1]).read_text()))
        return 0

    monkeypatch.setattr(cli, "run_server", run_server)
    assert invoke("serve", "--config", config, "--db", str(db)) == 0
    return served[0]


@pytest.fixture
def survey(write_config, tmp_path) -> tuple[str, Path]:
    """(config path, database): collected and judged, with a report folder beside it."""
    config = write_config()
    db = collected_db(config, tmp_path / "out" / "fwsurvey.db", stages=("collect", "claims"))
    report = tmp_path / "out" / "report"
    report.mkdir()
    (report / "report.md").write_text("# Report\n")
    return str(config), db


def test_publish_writes_a_self_contained_read_only_site(survey, tmp_path, capsys):
    config, db = survey
    # A row still in the WAL (its writer has not checkpointed): the copy must hold it.
    writer = Store(db)
    writer.finish_run(writer.start_run("in-the-wal", [], {}), "ok")
    assert Path(str(db) + "-wal").stat().st_size > 0
    target = tmp_path / "site"
    try:
        assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    finally:
        writer.db.close()
    assert capsys.readouterr().out.strip() == str(target)
    assert {p.name for p in target.iterdir()} == EXPECTED_FILES
    assert not list(tmp_path.glob(".site.*"))  # no staging folder left behind

    copy = sqlite3.connect(target / "fwsurvey.db")
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    assert copy.execute("SELECT command FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0] \
        == "in-the-wal"
    claims = copy.execute("SELECT count(*) FROM claims").fetchone()[0]
    copy.close()
    assert claims > 0
    assert not Path(str(target / "fwsurvey.db") + "-wal").exists()

    metadata = json.loads((target / "metadata.json").read_text())
    assert list(metadata["databases"]) == ["fwsurvey"]
    assert {"verdicts", "releases_per_year"} <= set(metadata["databases"]["fwsurvey"]["queries"])
    assert "settings" not in metadata and "immutable" not in metadata

    requirements = (target / "requirements.txt").read_text().splitlines()[1:]
    assert "datasette==0.65.5" in requirements and "datasette-vega==0.6.2" in requirements
    assert all("==" in line for line in requirements)
    assert not any(line.lower().startswith(("pip==", "torch", "selenium"))
                   for line in requirements)

    serve = (target / "serve.sh").read_text()
    assert ('"${DATASETTE:-datasette}" serve -i fwsurvey.db --metadata metadata.json'
            " --plugins-dir plugins --setting sql_time_limit_ms 3000") in serve
    assert [p.name for p in (target / "plugins").iterdir()] == ["fwsurvey_headers.py"]
    assert "--setting allow_download off" in serve
    assert (target / "serve.sh").stat().st_mode & 0o111
    assert "CMD [\"sh\", \"serve.sh\"]" in (target / "Dockerfile").read_text()
    assert (target / "report" / "report.md").read_text() == "# Report\n"

    manifest = json.loads((target / "publication.json").read_text())
    data = (target / "fwsurvey.db").read_bytes()
    assert manifest["database"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["database"]["latest_run"]["command"] == "in-the-wal"
    assert manifest["report"] == "report/" and manifest["generator"] == "fwsurvey publish"
    assert "sh serve.sh" in (target / "README.md").read_text()


def test_published_folder_serves_read_only_with_its_own_command(survey, tmp_path):
    config, db = survey
    target = tmp_path / "site"
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    port = free_port()
    datasette = Path(sys.executable).with_name("datasette")
    with serving(["sh", "serve.sh"], port, tmp_path / "site.log", cwd=target,
                 env={"DATASETTE": str(datasette), "PORT": str(port)}) as base:
        plugins = {p["name"]: p for p in requests.get(f"{base}/-/plugins.json",
                                                      timeout=10).json()}
        assert plugins["datasette-vega"]["version"] == "0.6.2"
        assert plugins["fwsurvey_headers.py"]["hooks"] == ["asgi_wrapper"]
        home = requests.get(base, timeout=10)
        assert_security_headers(home)
        databases = requests.get(f"{base}/-/databases.json", timeout=10).json()
        assert [(d["name"], d["is_mutable"]) for d in databases] == [("fwsurvey", False)]
        settings = requests.get(f"{base}/-/settings.json", timeout=10).json()
        assert settings["sql_time_limit_ms"] == 3000 and settings["allow_download"] is False
        rows = requests.get(f"{base}/fwsurvey/verdicts.json?_shape=array", timeout=10).json()
        assert len(rows) == Store(db).query("SELECT count(*) AS n FROM claims_latest")[0]["n"]
        refused = requests.get(f"{base}/fwsurvey.json?sql=delete+from+runs", timeout=10)
        assert refused.status_code == 400


def test_non_empty_target_needs_force_and_force_replaces_a_publication(survey, tmp_path,
                                                                       capsys):
    config, db = survey
    target = tmp_path / "site"
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    before = json.loads((target / "publication.json").read_text())
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 2
    assert "is not empty: choose another folder, or pass --force" in capsys.readouterr().err
    Store(db).finish_run(Store(db).start_run("newer", [], {}), "ok")
    assert invoke("publish", str(target), "--force", "--config", config, "--db", str(db)) == 0
    assert {p.name for p in target.iterdir()} == EXPECTED_FILES
    after = json.loads((target / "publication.json").read_text())
    assert after["database"]["latest_run"]["command"] == "newer" != \
        before["database"]["latest_run"]["command"]
    assert not list(tmp_path.glob(".site.*"))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("files", [
    # A project folder (what an issue report saw wiped), and someone's documents.
    {"fwsurvey.toml": "[survey]\n", "claims.toml": "", "kernels/mlp_digits/spec.toml": ""},
    {"Documents/letter.txt": "dear", "notes.md": "# notes"},
    # A manifest alone does not make a publication: the folder holds something else too.
    {"publication.json": '{"fwsurvey_version": "0.1", "database": {"file": "fwsurvey.db"}}',
     "fwsurvey.db": "", "thesis.tex": "chapter 1"},
    # A publication.json that is not fwsurvey's, or not JSON at all.
    {"publication.json": '{"name": "my-site"}', "index.html": "<p>"},
    {"publication.json": "not json", "README.md": "mine"},
], ids=["project", "documents", "extra-file", "foreign-manifest", "broken-manifest"])
def test_force_refuses_a_folder_publish_did_not_write(survey, tmp_path, capsys, files):
    config, db = survey
    target = tmp_path / "mine"
    for name, text in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    before = _tree(target)
    assert invoke("publish", str(target), "--force", "--config", config, "--db", str(db)) == 2
    message = capsys.readouterr().err.strip()
    assert "not a publication" in message and "choose another folder" in message, message
    assert len(message.splitlines()) == 1
    assert _tree(target) == before  # nothing deleted, nothing added
    assert not list(tmp_path.glob(".mine.*"))


def test_force_refuses_a_publication_someone_changed(survey, tmp_path, capsys):
    config, db = survey
    target = tmp_path / "site"
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    (target / "my-notes.txt").write_text("mine")
    assert invoke("publish", str(target), "--force", "--config", config, "--db", str(db)) == 2
    assert "(it also holds my-notes.txt)" in capsys.readouterr().err
    (target / "my-notes.txt").unlink()
    with sqlite3.connect(target / "fwsurvey.db") as conn:  # someone's edits to the copy
        conn.execute("CREATE TABLE mine (x)")
    conn.close()
    assert invoke("publish", str(target), "--force", "--config", config, "--db", str(db)) == 2
    assert "fwsurvey.db differs from the database publication.json records" in \
        capsys.readouterr().err


def test_a_database_that_opens_read_only_only_as_immutable_is_copied(survey, tmp_path,
                                                                      monkeypatch):
    """A WAL database in a folder this process cannot write (no -shm to share) is read as
    immutable when no WAL content waits (tests run as root: the refusal is simulated)."""
    _, db = survey
    Store(db).close()  # checkpointed: no WAL content
    connect = publish._connect_read_only

    def read_only_folder(path, immutable=False):
        if not immutable:
            raise sqlite3.OperationalError("unable to open database file")
        return connect(path, immutable)

    monkeypatch.setattr(publish, "_connect_read_only", read_only_folder)
    publish.copy_database(db, tmp_path / "copy.db")
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT count(*) FROM runs").fetchone() == \
        sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()
    copy.close()
    writer = Store(db)  # now a run's rows wait in the WAL: immutable would miss them
    writer.finish_run(writer.start_run("in-the-wal", [], {}), "ok")
    with pytest.raises(publish.PublishError, match="cannot copy .*unable to open"):
        publish.copy_database(db, tmp_path / "copy2.db")
    writer.db.close()
    assert not (tmp_path / "copy2.db").exists()


def test_force_refuses_a_folder_holding_or_above_the_configuration(survey, tmp_path, capsys):
    _, db = survey
    project = tmp_path / "above" / "project"
    project.mkdir(parents=True)
    config = project / "fwsurvey.toml"
    config.write_text(Path(survey[0]).read_text())
    for target in (project, tmp_path / "above"):
        before = _tree(target)
        assert invoke("publish", str(target), "--force", "--config", str(config),
                      "--db", str(db), "--report-dir", str(db.parent / "report")) == 2
        message = capsys.readouterr().err
        assert "holds the configuration" in message and str(config) in message
        assert _tree(target) == before


def test_force_refuses_an_ancestor_of_the_database(survey, tmp_path, capsys):
    config, db = survey
    before = _tree(tmp_path)
    for target in (db.parent, tmp_path):
        assert invoke("publish", str(target), "--force", "--config", config,
                      "--db", str(db)) == 2
        assert "publish into a folder of its own" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_empty_target_is_used(survey, tmp_path):
    config, db = survey
    (tmp_path / "site").mkdir()
    assert invoke("publish", str(tmp_path / "site"), "--config", config, "--db", str(db)) == 0
    assert (tmp_path / "site" / "fwsurvey.db").exists()


def test_missing_database_is_a_usage_error(write_config, tmp_path, capsys):
    assert invoke("publish", str(tmp_path / "site"), "--config", str(write_config()),
                  "--db", str(tmp_path / "none.db")) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_target_that_holds_the_database_is_refused(survey, tmp_path, capsys):
    config, db = survey
    assert invoke("publish", str(db.parent), "--force", "--config", config,
                  "--db", str(db)) == 2
    assert "publish into a folder of its own" in capsys.readouterr().err
    assert db.exists()


def test_a_failure_leaves_nothing_half_made(survey, tmp_path, monkeypatch):
    config, db = survey
    target = tmp_path / "site"
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    before = (target / "publication.json").read_text()

    def broken() -> list[str]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(publish, "pinned_requirements", broken)
    assert invoke("publish", str(target), "--force", "--config", config, "--db", str(db)) == 1
    assert (target / "publication.json").read_text() == before  # the previous one, intact
    assert invoke("publish", str(tmp_path / "new"), "--config", config, "--db", str(db)) == 1
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_publish_waits_for_no_run_it_exits_75(survey, tmp_path, capsys):
    config, db = survey
    with RunLock(db):
        assert invoke("publish", str(tmp_path / "site"), "--config", config,
                      "--db", str(db)) == cli.EXIT_LOCKED
    assert "publish when it has finished" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_generated_canned_queries_reach_serve_and_publish(survey, tmp_path, monkeypatch):
    config, db = survey
    generated = {"claim_example": {"title": "One claim", "sql": "select 1 as one"}}
    # publish_folder and `fwsurvey serve` (through serving_snapshot) both call it.
    monkeypatch.setattr(publish, "canned_queries_for", lambda db_path: generated)

    target = tmp_path / "site"
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    queries = json.loads((target / "metadata.json").read_text())["databases"]["fwsurvey"][
        "queries"]
    assert queries["claim_example"] == generated["claim_example"] and "verdicts" in queries

    served = serve_metadata(monkeypatch, config, db)
    assert "claim_example" in served["databases"]["fwsurvey"]["queries"]


def test_generated_queries_may_not_replace_datasette_yml_ones():
    config = load_datasette_yml(REPO / "datasette.yml")
    with pytest.raises(ConfigError, match="reuse its names: verdicts"):
        metadata_for(config, Path("x.db"), {"verdicts": {"sql": "select 1"}})


def test_claim_pages_come_from_the_stored_claims(survey, tmp_path, monkeypatch):
    """Edited after judging, the registry changes nothing: publish and serve show what the
    newest judged run stored."""
    config, db = survey
    stored = {r["claim_id"] for r in Store(db).query(
        "SELECT claim_id FROM claims WHERE run_id = (SELECT MAX(run_id) FROM claims)")}
    # A registry beside the config now takes over (survey.claims unset), with other claims.
    Path(config).with_name("claims.toml").write_text(
        '[[claims]]\nid = "only.new"\nsection = "ease-of-use"\ntext = "{a} is new"\n'
        'favours = "a"\nunsettleable = "a test"\n')
    expected = {"claim_" + c.replace(".", "_").replace("-", "_") for c in stored}
    target = tmp_path / "site"
    assert invoke("publish", str(target), "--config", config, "--db", str(db)) == 0
    queries = json.loads((target / "metadata.json").read_text())["databases"]["fwsurvey"][
        "queries"]
    assert expected <= set(queries) and "claim_community_larger" in expected
    assert "claim_only_new" not in queries
    served = serve_metadata(monkeypatch, config, db)
    assert set(served["databases"]["fwsurvey"]["queries"]) == set(queries)
