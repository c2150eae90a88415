"""Publishing the store through Datasette, configured by ``datasette.yml``.

``datasette.yml`` holds Datasette metadata (title, license, a description for every table
and column, canned queries) plus two keys of fwsurvey's own, which Datasette 0.65 takes on
its command line rather than in metadata: ``settings`` (passed as ``--setting``) and
``immutable`` (open the database with ``-i``: read-only, no writes possible).

``fwsurvey serve`` (:func:`serving_snapshot`) runs Datasette on a consistent copy of the store
taken when it starts, in a private temporary folder (never on the live file, which a run may be
writing); ``fwsurvey publish DIR`` (:func:`publish_folder`) writes a folder a host can serve
read-only: such a copy of the database, the metadata, the report, pinned requirements and the
exact ``datasette serve`` command. Both take their canned queries from ``datasette.yml`` plus
:func:`canned_queries_for` (one per claim stored in the database), and both load the plugin
``fwsurvey/datasette_headers.py`` (security headers) with ``--plugins-dir``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from importlib import util as importlib_util
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fwsurvey import __version__
from fwsurvey.config import ConfigError
from fwsurvey.store import Store

log = logging.getLogger(__name__)

#: The database name ``datasette.yml`` describes; remapped to the served file's name.
DATABASE_KEY = "fwsurvey"
_OWN_KEYS = ("settings", "immutable")
#: What a host installs to serve a publication: Datasette and the plugins it uses.
SERVED_PACKAGES = ("datasette", "datasette-vega")
#: The folder, in a publication or a served snapshot, that ``--plugins-dir`` loads.
PLUGINS_DIR = "plugins"
#: The security-headers plugin's file name there (Datasette lists it under this name).
HEADERS_PLUGIN = "fwsurvey_headers.py"
#: What ``publication.json`` says in ``generator``: the mark of a folder publish wrote.
GENERATOR = "fwsurvey publish"
#: Every name publish writes in a publication, besides the database (named in its manifest).
PUBLICATION_FILES = frozenset({"metadata.json", "requirements.txt", "serve.sh", "Dockerfile",
                               "publication.json", "README.md"})
PUBLICATION_FOLDERS = frozenset({"report", PLUGINS_DIR})


class PublishError(ValueError):
    """A publication that cannot be made as asked (no database, target not empty, ...)."""


def load_datasette_yml(path: Path) -> dict[str, Any]:
    """Parse ``datasette.yml``, with errors that name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "Datasette configuration not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, f"invalid YAML: {exc}") from None
    if not isinstance(data, dict) or DATABASE_KEY not in (data.get("databases") or {}):
        raise ConfigError(path, "databases", f"must describe the database {DATABASE_KEY!r}")
    return data


def canned_queries_for(db_path: Path) -> dict[str, dict[str, Any]]:
    """Canned queries generated from the database, added to datasette.yml's own.

    The one place where generated queries join the hand-written ones: ``fwsurvey serve``
    and ``fwsurvey publish`` both call it and pass the result to :func:`metadata_for`. Each
    value is a canned query as datasette.yml writes it (``title``, ``description``,
    ``sql``, ...); a name may not repeat one of datasette.yml.

    One query per claim judged in the newest run that judged the claims (``claim_<id>``):
    its evidence rows, each with the run and source of its values and the SQL that produced
    them. They come from the stored claims, never from the registry file, so the pages show
    what was judged even when claims.toml has been edited since.
    """
    conn = _connect_read_only(db_path)
    try:
        claims = conn.execute(
            "SELECT claim_id, text, sentence FROM claims"
            " WHERE run_id = (SELECT MAX(run_id) FROM claims) ORDER BY rowid").fetchall()
    except sqlite3.OperationalError as exc:  # no claims table: serve the data without pages
        log.warning("no per-claim queries: %s", exc)
        return {}
    finally:
        conn.close()
    return {_query_name(claim_id): _claim_query(claim_id, text, sentence)
            for claim_id, text, sentence in claims}


def _query_name(claim_id: str) -> str:
    return "claim_" + claim_id.replace(".", "_").replace("-", "_")


def _claim_query(claim_id: str, text: str, sentence: str | None) -> dict[str, Any]:
    # Stored claim ids were validated as [a-z0-9][a-z0-9_.-]*: safe inside a quoted literal.
    return {
        "title": f"Claim: {text}",
        "description": (f"The evidence behind the newest verdict on claim {claim_id}"
                        + (f" ({sentence})" if sentence else "")
                        + ": one row per measurement, with the run and source of each"
                        " value and the SQL that produced it (parameters :run_id, :a, :b)."),
        "sql": (
            "select c.verdict, c.reason, e.metric, e.label, e.item, e.value_a, e.value_b,"
            " e.unit, e.better, e.favours, e.counts, e.note, e.data_run_id_a,"
            " e.data_source_a, e.data_fetched_at_a, e.data_run_id_b, e.data_source_b,"
            " e.data_fetched_at_b, e.metric_sql, e.run_id\n"
            "from claim_evidence e join claims c using (run_id, claim_id)\n"
            f"where e.claim_id = '{claim_id}'\n"
            f"  and e.run_id = (select max(run_id) from claims where claim_id = '{claim_id}')\n"
            "order by e.metric, e.item"),
    }


def metadata_for(config: dict[str, Any], db_path: Path,
                 extra_queries: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Datasette metadata for ``db_path``: fwsurvey's own keys removed, database renamed,
    ``extra_queries`` (see :func:`canned_queries_for`) merged into the canned queries."""
    metadata = {k: v for k, v in config.items() if k not in _OWN_KEYS}
    databases = dict(metadata["databases"])
    database = dict(databases.pop(DATABASE_KEY))
    if extra_queries:
        queries = dict(database.get("queries") or {})
        clash = sorted(set(queries) & set(extra_queries))
        if clash:
            raise ConfigError("datasette.yml", f"databases.{DATABASE_KEY}.queries",
                              "generated canned queries reuse its names: " + ", ".join(clash))
        database["queries"] = {**queries, **extra_queries}
    databases[Path(db_path).stem] = database
    metadata["databases"] = databases
    return metadata


def settings_for(config: dict[str, Any]) -> dict[str, Any]:
    """The Datasette settings from ``datasette.yml``."""
    return dict(config.get("settings") or {})


def serve_arguments(db_path: Path | str, metadata_path: Path | str, config: dict[str, Any],
                    immutable: bool | None = None,
                    plugins_dir: Path | str | None = None) -> list[str]:
    """``datasette serve`` and its arguments for a copy of the store: ``-i`` unless
    datasette.yml turns ``immutable`` off, the metadata, ``--plugins-dir`` (the folder that
    holds the headers plugin, see :func:`write_plugins`) and every setting as
    ``--setting NAME VALUE``."""
    if immutable is None:
        immutable = config.get("immutable", True)
    args = ["serve", *(["-i"] if immutable else []), str(db_path),
            "--metadata", str(metadata_path)]
    if plugins_dir is not None:
        args += ["--plugins-dir", str(plugins_dir)]
    for name, value in settings_for(config).items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        args += ["--setting", name, str(value)]
    return args


def datasette_command(db_path: Path, metadata_path: Path, config: dict[str, Any],
                      host: str, port: int, plugins_dir: Path | None = None) -> list[str]:
    """The ``datasette serve`` command line for a copy of the store (see
    :func:`serving_snapshot`)."""
    return [sys.executable, "-m", "datasette",
            *serve_arguments(db_path, metadata_path, config, plugins_dir=plugins_dir),
            "--host", host, "--port", str(port)]


def write_plugins(folder: Path) -> Path:
    """Write ``folder/plugins/`` holding the security-headers plugin; return that folder.

    The plugin is fwsurvey's module ``fwsurvey/datasette_headers.py``, copied as a file so
    that a publication serves with the same headers where fwsurvey is not installed.
    """
    spec = importlib_util.find_spec("fwsurvey.datasette_headers")
    if spec is None or spec.origin is None:
        raise PublishError("fwsurvey.datasette_headers is missing: reinstall fwsurvey")
    plugins = Path(folder) / PLUGINS_DIR
    plugins.mkdir()
    shutil.copyfile(spec.origin, plugins / HEADERS_PLUGIN)
    return plugins


@dataclass(frozen=True)
class Snapshot:
    """What ``fwsurvey serve`` hands Datasette: the copy, its metadata, the plugins."""

    db: Path
    metadata: Path
    plugins: Path


@contextmanager
def serving_snapshot(db_path: Path, config: dict[str, Any]) -> Iterator[Snapshot]:
    """A consistent copy of the store to serve, in a private temporary folder removed on exit.

    Datasette's ``-i`` (immutable) promises SQLite that nothing changes the file: on the live
    store, which a run may be writing, that tore pages (a table page and a count of the same
    table disagreed, or "database disk image is malformed"). The copy (:func:`copy_database`)
    is one snapshot, WAL included; the live store is only read (a read-only database or
    folder serves too) and nothing is written beside it. Newer runs show after a restart.
    """
    db_path = Path(db_path).absolute()
    folder = Path(tempfile.mkdtemp(prefix="fwsurvey-serve-"))  # private (0700), in TMPDIR
    try:
        copy = folder / db_path.name
        copy_database(db_path, copy)
        metadata = write_metadata(config, copy, canned_queries_for(copy))
        yield Snapshot(copy, metadata, write_plugins(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_server(command: list[str]) -> int:
    """Run ``command`` (Datasette) until it exits; return its exit status.

    Unlike ``exec``, this process stays to remove the snapshot afterwards: SIGTERM and SIGHUP
    are passed on to the server, and Ctrl-C (which the terminal sends the server too) waits
    for it to stop. Exits by those signals count as 0.
    """
    proc = subprocess.Popen(command)

    def forward(signum: int, frame: Any) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                try:
                    code = proc.wait(timeout=10)
                    break
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    proc.terminate()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return 0 if code in (-signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP) else code


def write_metadata(config: dict[str, Any], db_path: Path,
                   extra_queries: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the metadata Datasette reads beside the database; return its path."""
    path = Path(db_path).with_name(Path(db_path).stem + ".datasette-metadata.json")
    path.write_text(json.dumps(metadata_for(config, db_path, extra_queries), indent=2),
                    encoding="utf-8")
    return path


def make_app(db_path: Path, config: dict[str, Any],
             extra_queries: dict[str, dict[str, Any]] | None = None,
             plugins_dir: Path | None = None):
    """A Datasette instance serving ``db_path`` in-process (read-only), as ``serve`` serves
    its snapshot (``plugins_dir``: a folder from :func:`write_plugins`)."""
    from datasette.app import Datasette

    immutable = config.get("immutable", True)
    return Datasette(
        files=[] if immutable else [str(db_path)],
        immutables=[str(db_path)] if immutable else [],
        metadata=metadata_for(config, db_path, extra_queries),
        settings=settings_for(config),
        plugins_dir=str(plugins_dir) if plugins_dir is not None else None,
    )


# -- a publication folder ----------------------------------------------------------------

def publish_folder(db_path: Path, target: Path, config: dict[str, Any],
                   *, report_dir: Path | None = None, force: bool = False,
                   config_path: Path | None = None) -> Path:
    """Write a self-contained folder that hosts the survey read-only; return its path.

    It holds a consistent copy of the database (``VACUUM INTO``, never a raw copy of a WAL
    file), ``metadata.json``, the report when ``report_dir`` exists, ``requirements.txt``
    (Datasette and its plugins, pinned), ``serve.sh`` (the exact ``datasette serve``
    command), ``plugins/`` (the security-headers plugin), a ``Dockerfile``,
    ``publication.json`` (provenance) and a README. The folder is built beside ``target`` and
    renamed into place: a failure leaves no half-made folder and, with ``force``, the previous
    publication intact.

    ``force`` replaces only a previous publication (see :func:`publication_problem`), never
    a folder that holds the database, the report or the configuration file ``config_path``.
    """
    db_path, target = Path(db_path).absolute(), Path(target).absolute()
    report_dir = Path(report_dir).absolute() if report_dir is not None else None
    if not db_path.is_file():
        raise PublishError(f"no database at {db_path}: run `fwsurvey run` first")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise PublishError(f"{target} is a link or not a folder: choose another folder")
    for source in (db_path, report_dir):
        if source is not None and (_within(source, target) or _within(target, source)):
            raise PublishError(f"{target} overlaps {source}: publish into a folder of its own")
    if config_path is not None and _within(Path(config_path).absolute(), target):
        raise PublishError(f"{target} holds the configuration {Path(config_path).absolute()}:"
                           " publish into a folder of its own")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise PublishError(f"{target} is not empty: choose another folder, or pass --force "
                               "to replace a previous publication")
        problem = publication_problem(target)
        if problem:
            raise PublishError(f"{target} is not a publication fwsurvey wrote ({problem}), and "
                               "--force replaces only one: choose another folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                    dir=target.parent))
    try:
        _fill_publication(staging, db_path, config, report_dir)
        staging.chmod(0o755)  # mkdtemp makes it private; a host serves it
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def publication_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a publication :func:`publish_folder` wrote, or None if it is.

    One is recognised by its manifest: ``publication.json`` parses, names fwsurvey
    (``generator``, or ``fwsurvey_version`` in one written before it had that key) and the
    database file; and the folder holds nothing else than what publish writes, as plain files
    and folders (no links), the database matching the SHA-256 the manifest records.
    """
    folder = Path(folder)
    manifest_path = folder / "publication.json"
    if manifest_path.is_symlink() or not manifest_path.is_file():
        return "no publication.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "publication.json does not parse"
    database = manifest.get("database") if isinstance(manifest, dict) else None
    if not (isinstance(manifest, dict) and isinstance(database, dict)
            and (manifest.get("generator") == GENERATOR
                 or isinstance(manifest.get("fwsurvey_version"), str))):
        return "publication.json is not fwsurvey's"
    db_name = database.get("file")
    if not isinstance(db_name, str) or Path(db_name).name != db_name or db_name in (
            PUBLICATION_FILES | PUBLICATION_FOLDERS):
        return "publication.json names no database file"
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            foreign.append(entry.name)
        elif entry.name in PUBLICATION_FILES or entry.name == db_name:
            if not entry.is_file():
                foreign.append(entry.name)
        elif entry.name not in PUBLICATION_FOLDERS or not entry.is_dir():
            foreign.append(entry.name)
    if foreign:
        return "it also holds " + ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    db_file = folder / db_name
    if db_file.is_file() and _sha256(db_file) != database.get("sha256"):
        return f"{db_name} differs from the database publication.json records"
    return None


def _connect_read_only(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """A connection that can only read ``path`` (never creates or writes it)."""
    return sqlite3.connect(f"file:{quote(str(Path(path).absolute()))}?mode=ro"
                           + ("&immutable=1" if immutable else ""), uri=True)


def _vacuum_into(source: Path, dest: Path) -> None:
    """``VACUUM INTO dest`` from a read-only connection to ``source``.

    A WAL database whose folder this process cannot write (a read-only mount, another
    user's folder) opens read-only only while its ``-shm`` file exists, that is while a
    writer has it open. Otherwise nothing is writing it and nothing waits in a WAL, so it is
    read as immutable, and the copy is refused if the file changed meanwhile.
    """
    try:
        conn = _connect_read_only(source)
        conn.execute("SELECT count(*) FROM sqlite_master")
    except sqlite3.OperationalError:
        wal = Path(f"{source}-wal")
        if wal.exists() and wal.stat().st_size:
            raise
        before = _file_state(source)
        conn = _connect_read_only(source, immutable=True)
        try:
            conn.execute("VACUUM INTO ?", [str(dest)])
        finally:
            conn.close()
        if _file_state(source) != before or (wal.exists() and wal.stat().st_size):
            dest.unlink(missing_ok=True)
            raise sqlite3.OperationalError("it changed while it was copied; try again") from None
        return
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("VACUUM INTO ?", [str(dest)])
    finally:
        conn.close()


def _file_state(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def copy_database(source: Path, dest: Path) -> None:
    """A consistent, compact, single-file copy of the store at the current schema.

    ``VACUUM INTO`` reads one snapshot (WAL content included), so a writer cannot tear it;
    ``source`` is opened read-only. The copy is migrated (a database from an older fwsurvey
    gets the tables the metadata describes) and left in rollback-journal mode: one file,
    nothing beside it.
    """
    try:
        _vacuum_into(Path(source), Path(dest))
    except sqlite3.DatabaseError as exc:
        raise PublishError(f"cannot copy {source}: {exc}") from None
    Store(dest).close()
    conn = sqlite3.connect(dest)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()
    if check != "ok":
        raise PublishError(f"the copy of {source} failed SQLite's quick_check: {check}")


def pinned_requirements(names: tuple[str, ...] = SERVED_PACKAGES) -> list[str]:
    """``name==version`` for ``names`` and everything they need, as installed here.

    Markers are evaluated for this interpreter and platform (the Dockerfile uses the same
    Python release); pip itself is left out.
    """
    pins: dict[str, str] = {}
    todo = list(names)
    while todo:
        key = canonicalize_name(todo.pop())
        if key in pins or key == "pip":
            continue
        try:
            dist = importlib_metadata.distribution(key)
        except importlib_metadata.PackageNotFoundError:
            raise PublishError(f"{key} is not installed: run scripts/setup.sh") from None
        pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(pins.values(), key=str.lower)


def _within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, replacing an existing ``target`` (checked before)."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old)


def _fill_publication(folder: Path, db_path: Path, config: dict[str, Any],
                      report_dir: Path | None) -> None:
    db_copy = folder / db_path.name
    copy_database(db_path, db_copy)
    metadata = metadata_for(config, db_copy, canned_queries_for(db_copy))
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n",
                                          encoding="utf-8")
    has_report = report_dir is not None and report_dir.is_dir()
    if has_report:
        shutil.copytree(report_dir, folder / "report")
    requirements = pinned_requirements()
    (folder / "requirements.txt").write_text(
        "# Datasette and its plugins, as fwsurvey serves them (exact versions).\n"
        + "\n".join(requirements) + "\n", encoding="utf-8")

    write_plugins(folder)
    # Always immutable: a publication is read-only whatever datasette.yml says.
    arguments = shlex.join(serve_arguments(db_copy.name, "metadata.json", config,
                                           immutable=True, plugins_dir=PLUGINS_DIR))
    serve = folder / "serve.sh"
    serve.write_text(
        "#!/bin/sh\n"
        "# Serves this publication read-only with Datasette (written by `fwsurvey publish`).\n"
        "# First: python3 -m pip install -r requirements.txt\n"
        "# HOST and PORT say where to listen (default 127.0.0.1:8001; 0.0.0.0 in a\n"
        "# container); DATASETTE names the program if it is not on PATH.\n"
        "set -e\n"
        'cd "$(dirname "$0")"\n'
        f'exec "${{DATASETTE:-datasette}}" {arguments} \\\n'
        '    --host "${HOST:-127.0.0.1}" --port "${PORT:-8001}"\n', encoding="utf-8")
    serve.chmod(0o755)

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    (folder / "Dockerfile").write_text(
        "# The publication as a container: docker build -t fwsurvey-site . &&\n"
        "# docker run -p 8001:8001 fwsurvey-site\n"
        f"FROM python:{python}-slim\n"
        "WORKDIR /srv/fwsurvey\n"
        "COPY requirements.txt .\n"
        "RUN python -m pip install --no-cache-dir -r requirements.txt\n"
        "COPY . .\n"
        "ENV HOST=0.0.0.0 PORT=8001\n"
        "EXPOSE 8001\n"
        'CMD ["sh", "serve.sh"]\n', encoding="utf-8")

    manifest = _manifest(db_copy, requirements, has_report)
    (folder / "publication.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                             encoding="utf-8")
    (folder / "README.md").write_text(_readme(metadata, manifest, db_copy.name),
                                      encoding="utf-8")


def _manifest(db_copy: Path, requirements: list[str], has_report: bool) -> dict[str, Any]:
    conn = _connect_read_only(db_copy)
    conn.row_factory = sqlite3.Row
    try:
        latest = conn.execute("SELECT id, status, command, started_at, finished_at FROM runs"
                              " ORDER BY id DESC LIMIT 1").fetchone()
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        conn.close()
    return {
        "generator": GENERATOR,  # how `publish --force` recognises a folder it may replace
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fwsurvey_version": __version__,
        "database": {
            "file": db_copy.name,
            "bytes": db_copy.stat().st_size,
            "sha256": _sha256(db_copy),
            "runs": runs,
            "latest_run": dict(latest) if latest else None,
        },
        "report": "report/" if has_report else None,
        "requirements": requirements,
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _readme(metadata: dict[str, Any], manifest: dict[str, Any], db_name: str) -> str:
    db = manifest["database"]
    latest = db["latest_run"]
    run = (f"run {latest['id']} ({latest['status']}, started {latest['started_at']})"
           if latest else "no run yet")
    database = Path(db_name).stem
    lines = [
        f"# {metadata.get('title', 'fwsurvey')}",
        "",
        f"Published by fwsurvey {manifest['fwsurvey_version']} on {manifest['published_at']}"
        f" from {run}. Provenance: `publication.json`.",
        "",
        "| file | what |",
        "| --- | --- |",
        f"| `{db_name}` | the survey database (SQLite, served read-only) |",
        "| `metadata.json` | Datasette metadata: descriptions, units, facets, canned queries |",
        "| `requirements.txt` | Datasette and its plugins, pinned |",
        "| `serve.sh` | the `datasette serve` command, with the publication settings |",
        "| `plugins/` | a Datasette plugin that adds security headers (CSP, no framing) |",
        "| `Dockerfile` | the same as a container |",
    ]
    if manifest["report"]:
        lines.append("| `report/` | the Markdown report and its charts |")
    lines += [
        "",
        "Serve it:",
        "",
        "```sh",
        "python3 -m pip install -r requirements.txt",
        "HOST=0.0.0.0 PORT=8001 sh serve.sh",
        "```",
        "",
        f"The claims and their verdicts: `/{database}/claims`. Charts (datasette-vega): every",
        "table and query page has \"Show charting options\"; a chart's settings live in the",
        "URL's fragment, e.g.",
        f"`/{database}/releases_per_year#g.mark=bar&g.x_column=year&g.x_type=ordinal"
        "&g.y_column=releases&g.y_type=quantitative&g.color_column=framework`.",
        "",
    ]
    return "\n".join(lines)
