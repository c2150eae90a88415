"""The fwsurvey command line: end to end on recorded data, errors, exit codes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fwsurvey import cli
from fwsurvey.lock import RunLock
from fwsurvey.store import Store
from tests import test_store


def invoke(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return info.value.code


def test_run_collects_reports_and_is_idempotent(write_config, pypi_index, tmp_path, capsys):
    config = str(write_config())
    assert invoke("run", "--config", config) == cli.EXIT_OK
    out, err = capsys.readouterr()
    report = tmp_path / "out" / "report" / "report.md"
    assert out.strip().endswith(str(report))
    assert "Browse: fwsurvey serve" in err
    assert (tmp_path / "out" / "report" / "releases.png").exists()

    assert invoke("run", "--config", config) == cli.EXIT_OK
    store = Store(tmp_path / "out" / "test.db")
    assert [r["id"] for r in store.query("SELECT id FROM runs")] == [1, 2]
    releases = store.query("SELECT count(*) AS n, count(DISTINCT package || version) AS d"
                           " FROM pypi_releases")[0]
    assert releases["n"] == releases["d"] > 200
    stages = store.query("SELECT stage, source, status FROM run_sources WHERE run_id = 2"
                         " AND stage IN ('collect', 'report') ORDER BY stage, source")
    # The test config turns the live community sources off; git has no clone to read.
    assert stages == [{"stage": "collect", "source": "docs", "status": "skipped"},
                      {"stage": "collect", "source": "downloads", "status": "skipped"},
                      {"stage": "collect", "source": "git", "status": "ok"},
                      {"stage": "collect", "source": "github", "status": "skipped"},
                      {"stage": "collect", "source": "hub", "status": "skipped"},
                      {"stage": "collect", "source": "pypi", "status": "ok"},
                      {"stage": "report", "source": "markdown", "status": "ok"}]


def test_db_option_overrides_the_config(write_config, pypi_index, tmp_path):
    db = tmp_path / "elsewhere.db"
    assert invoke("collect", "--source", "pypi", "--config", str(write_config()),
                    "--db", str(db)) == cli.EXIT_OK
    assert Store(db).query("SELECT command FROM runs") == [{"command": "collect --source=pypi"}]
    assert not (tmp_path / "out" / "test.db").exists()


def test_unknown_source_is_a_usage_error(write_config, capsys):
    assert invoke("collect", "--source", "nope", "--config", str(write_config())) == 2
    assert "unknown source 'nope'; known sources: pypi, github, git" in capsys.readouterr().err


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "fwsurvey.toml"
    path.write_text('[frameworks.a]\npypi = ["a"]\n[frameworks.b]\nname = "B"\n')
    assert invoke("collect", "--config", str(path)) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == "error: fwsurvey.toml: frameworks.a.name: required key is missing"


def test_missing_config_names_the_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FWSURVEY_CONFIG", raising=False)
    assert invoke("status") == cli.EXIT_USAGE
    assert "configuration file not found" in capsys.readouterr().err


def test_locked_database_exits_75(write_config, tmp_path, capsys):
    config = write_config()
    with RunLock(tmp_path / "out" / "test.db"):
        assert invoke("collect", "--config", str(config)) == cli.EXIT_LOCKED
    assert "another fwsurvey run" in capsys.readouterr().err


def test_overlapping_scheduled_run_exits_75_and_writes_nothing(write_config, tmp_path):
    """Two cron jobs overlap: the second process names the holder, writes nothing, exits 75."""
    config = write_config()
    db = tmp_path / "out" / "test.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from fwsurvey.lock import RunLock\n"
         "with RunLock(sys.argv[1]): print('held', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        fwsurvey = Path(sys.executable).with_name("fwsurvey")
        second = subprocess.run([str(fwsurvey), "run", "--config", str(config)],
                                capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert second.returncode == cli.EXIT_LOCKED == 75
    assert second.stdout == ""
    assert second.stderr.strip() == (f"error: another fwsurvey run (pid {holder.pid}) is writing"
                                     f" to {db}; try again when it has finished")
    assert not db.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_run_completes_degraded_and_status_says_why(write_config, tmp_path, capsys):
    config = str(write_config(index=f"http://127.0.0.1:{_closed_port()}/"))
    assert invoke("run", "--config", config) == cli.EXIT_DEGRADED
    capsys.readouterr()
    store = Store(tmp_path / "out" / "test.db")
    assert store.query("SELECT status FROM runs") == [{"status": "degraded"}]
    assert store.query("SELECT count(*) AS n FROM pypi_packages") == [{"n": 0}]
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "PyPI was `unreachable`" in report and "not collected yet" in report

    assert invoke("status", "--config", config) == cli.EXIT_DEGRADED
    out = capsys.readouterr().out
    assert "pypi" in out and "connection failed" in out
    assert "unreachable (run 1)" in out


def test_report_without_database_is_a_clear_error(write_config, capsys):
    assert invoke("report", "--config", str(write_config())) == cli.EXIT_USAGE
    assert "no database at" in capsys.readouterr().err


def test_unexpected_error_is_one_line_unless_verbose(write_config, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "run_survey", boom)
    config = str(write_config())
    assert invoke("collect", "--config", config) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.strip() == "error: RuntimeError: boom  (--verbose for the traceback)"
    assert invoke("collect", "--config", config, "--verbose") == cli.EXIT_FAILED
    assert "Traceback" in capsys.readouterr().err


def test_installed_entry_point_answers():
    exe = Path(sys.executable).with_name("fwsurvey")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("collect", "report", "run", "serve", "status"):
        assert command in result.stdout


@pytest.mark.parametrize("edit, message", [
    # a misspelt source table: before, silently ignored (and its settings with it)
    (("[sources.pypi]", "[sources.pipy]"),
     "fwsurvey.toml: sources.pipy: unknown source (misspelt?); known: pypi, github, git, "
     "downloads, docs"),
    (("index_url =", "index_ur ="), "fwsurvey.toml: sources.pypi.index_ur: unknown key"),
    (("[kernels]\nenabled = false", "[kernels]\nenabled = false\nframeworks = [\"pytroch\"]"),
     "fwsurvey.toml: kernels.frameworks[0]: 'pytroch' is not a framework with an adapter"),
    # a key of the LAST source: refused before the first source (pypi) runs
    (("crawl_delay = 0.0", "crawl_delai = 0.0"),
     "fwsurvey.toml: sources.docs.crawl_delai: unknown key"),
])
def test_every_command_refuses_a_misspelt_table_or_key(write_config, capsys, edit, message):
    path = write_config()
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    for command in ("status", "collect", "report"):
        assert invoke(command, "--config", str(path)) == cli.EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {message}"), err
        assert "\n" not in err  # one line
    assert not (path.parent / "out").exists()  # nothing ran, nothing was written


# -- the database: unusable, damaged, newer, read-only; what follows --db -------------------

def _one_error_line(err: str, path: Path, fragment: str) -> None:
    line = err.strip()
    assert "\n" not in line, line
    assert line.startswith(f"error: {path}: "), line
    assert fragment in line, line


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p.write_text("not SQLite at all\n" * 200), "is not an SQLite database"),
    (lambda p: p.mkdir(), "is a folder, not a database file"),
    (lambda p: test_store.damaged_database(p), "the database is damaged"),
    (lambda p: test_store.newer_database(p), "was written by a newer fwsurvey (migration "
                                             "m999_from_the_future); upgrade fwsurvey"),
])
def test_an_unusable_database_is_one_line_naming_it_exit_2(write_config, tmp_path, capsys,
                                                            make, fragment):
    config = str(write_config(index=f"http://127.0.0.1:{_closed_port()}/"))
    db = tmp_path / "out" / "test.db"
    db.parent.mkdir()
    make(db)
    before = db.read_bytes() if db.is_file() else None
    for command in ("collect", "status", "report"):
        assert invoke(command, "--config", config) == cli.EXIT_USAGE, command
        _one_error_line(capsys.readouterr().err, db, fragment)
    if before is not None:
        assert db.read_bytes() == before  # nothing was written to it


def _read_only_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the installed fwsurvey where file permissions bind: as root (which ignores
    them), without the capabilities that override them."""
    command = [str(Path(sys.executable).with_name("fwsurvey")), *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot bind")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.fixture
def read_only_survey(write_config, tmp_path):
    """A survey whose database (run 1, ok) sits in ro/; the report goes to reports/."""
    ro, reports = tmp_path / "ro", tmp_path / "reports"
    text = write_config().read_text()
    text = (text.replace('database = "out/test.db"', f'database = "{ro / "test.db"}"')
            .replace('report_dir = "out/report"', f'report_dir = "{reports}"')
            .replace("[sources.pypi]\n", "[sources.pypi]\nenabled = false\n"))
    config = write_config(text=text)
    assert invoke("collect", "--source", "git", "--config", str(config)) == cli.EXIT_OK
    yield config, ro / "test.db", reports
    for path in (ro, ro / "test.db"):  # let pytest clean up, whoever runs it
        if path.exists():
            path.chmod(0o755)


def test_status_and_report_read_a_read_only_database(read_only_survey, tmp_path):
    config, db, reports = read_only_survey
    db.chmod(0o444)
    db.parent.chmod(0o555)
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    env = {"MPLCONFIGDIR": str(tmp_path / "mpl")}
    status = _read_only_cli("status", "--config", str(config), env=env)
    assert status.returncode == cli.EXIT_OK, status.stderr
    assert f"Database {db}: last run 1 (ok)" in " ".join(status.stdout.split())
    report = _read_only_cli("report", "--config", str(config), env=env)
    assert report.returncode == cli.EXIT_OK, report.stderr
    assert report.stdout.strip() == str(reports / "report.md")
    assert "survey database (run 1, " in (reports / "report.md").read_text()
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before


def test_a_write_to_a_read_only_database_is_one_line_exit_2(read_only_survey, tmp_path):
    config, db, _ = read_only_survey
    db.chmod(0o444)
    before = db.read_bytes()
    result = _read_only_cli("collect", "--source", "git", "--config", str(config), env={})
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    _one_error_line(result.stderr, db, "cannot be written (attempt to write a readonly"
                                       " database): this command writes")
    assert db.read_bytes() == before


def test_a_write_command_in_a_read_only_folder_is_one_line_exit_2(read_only_survey, tmp_path):
    """The lock file cannot be made beside the database: a usage problem, not a crash."""
    config, db, _ = read_only_survey
    (db.parent / "test.db.lock").unlink(missing_ok=True)
    db.parent.chmod(0o555)
    result = _read_only_cli("collect", "--source", "git", "--config", str(config), env={})
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    _one_error_line(result.stderr, db, "cannot take the lock beside the database")


def test_report_of_a_copy_goes_beside_the_copy(write_config, tmp_path, capsys):
    """--db another database: the report goes beside it, the configured one is untouched."""
    config = str(write_config(index=f"http://127.0.0.1:{_closed_port()}/"))
    assert invoke("collect", "--source", "git", "--config", config) == cli.EXIT_OK
    assert invoke("report", "--config", config) == cli.EXIT_OK
    configured = tmp_path / "out" / "report" / "report.md"
    before = configured.read_bytes()
    copy = tmp_path / "copy" / "copy.db"
    copy.parent.mkdir()
    shutil.copyfile(tmp_path / "out" / "test.db", copy)
    capsys.readouterr()
    assert invoke("claims", "--config", config, "--db", str(copy)) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == str(copy.parent / "report" / "report.md")
    assert invoke("report", "--config", config, "--db", str(copy)) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == str(copy.parent / "report" / "report.md")
    assert configured.read_bytes() == before


def test_the_github_cache_goes_beside_the_database_used(write_config, tmp_path):
    port = _closed_port()
    text = write_config().read_text()
    text = (text.replace("[sources.github]\nenabled = false",
                         f'[sources.github]\nenabled = true\napi_url = "http://127.0.0.1:{port}"')
            .replace('http_cache = "off"\n', "")
            .replace("[sources.pypi]\n", "[sources.pypi]\nenabled = false\n"))
    config = str(write_config(text=text))
    other = tmp_path / "other" / "copy.db"
    assert invoke("status", "--config", config, "--db", str(other)) == cli.EXIT_DEGRADED
    assert (other.parent / "http-cache").is_dir()
    assert not (tmp_path / "out").exists()


def test_the_report_folder_defaults_to_report_beside_the_database(tmp_path):
    """The rule --db follows: what derives from the database lives beside it."""
    from fwsurvey.config import load_config

    path = tmp_path / "fwsurvey.toml"
    path.write_text('[survey]\ndatabase = "data/x.db"\n'
                    '[frameworks.a]\nname = "A"\n[frameworks.b]\nname = "B"\n')
    config = load_config(path)
    assert config.report_dir == tmp_path / "data" / "report"
    assert config.with_database(tmp_path / "data" / "x.db") is config
    moved = config.with_database(tmp_path / "copy" / "y.db")
    assert (moved.database, moved.report_dir) == (tmp_path / "copy" / "y.db",
                                                  tmp_path / "copy" / "report")
