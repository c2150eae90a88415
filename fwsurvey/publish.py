"""Publishing the store through Datasette, configured by ``datasette.yml``.

``datasette.yml`` holds Datasette metadata (title, license, a description for every table
and column, canned queries) plus two keys of fwsurvey's own, which Datasette 0.65 takes on
its command line rather than in metadata: ``settings`` (passed as ``--setting``) and
``immutable`` (open the database with ``-i``: read-only, no writes possible).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from fwsurvey.config import ConfigError

#: The database name ``datasette.yml`` describes; remapped to the served file's name.
DATABASE_KEY = "fwsurvey"
_OWN_KEYS = ("settings", "immutable")


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


def metadata_for(config: dict[str, Any], db_path: Path) -> dict[str, Any]:
    """Datasette metadata for ``db_path``: fwsurvey's own keys removed, database renamed."""
    metadata = {k: v for k, v in config.items() if k not in _OWN_KEYS}
    databases = dict(metadata["databases"])
    databases[Path(db_path).stem] = databases.pop(DATABASE_KEY)
    metadata["databases"] = databases
    return metadata


def settings_for(config: dict[str, Any]) -> dict[str, Any]:
    """The Datasette settings from ``datasette.yml``."""
    return dict(config.get("settings") or {})


def datasette_command(db_path: Path, metadata_path: Path, config: dict[str, Any],
                      host: str, port: int) -> list[str]:
    """The ``datasette serve`` command line for the store."""
    immutable = config.get("immutable", True)
    args = [sys.executable, "-m", "datasette", "serve",
            "-i" if immutable else "", str(db_path),
            "--metadata", str(metadata_path), "--host", host, "--port", str(port)]
    args = [a for a in args if a]
    for name, value in settings_for(config).items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        args += ["--setting", name, str(value)]
    return args


def write_metadata(config: dict[str, Any], db_path: Path) -> Path:
    """Write the metadata Datasette reads beside the database; return its path."""
    path = Path(db_path).with_name(Path(db_path).stem + ".datasette-metadata.json")
    path.write_text(json.dumps(metadata_for(config, db_path), indent=2), encoding="utf-8")
    return path


def make_app(db_path: Path, config: dict[str, Any]):
    """A Datasette instance serving ``db_path`` in-process (read-only), as ``serve`` would."""
    from datasette.app import Datasette

    immutable = config.get("immutable", True)
    return Datasette(
        files=[] if immutable else [str(db_path)],
        immutables=[str(db_path)] if immutable else [],
        metadata=metadata_for(config, db_path),
        settings=settings_for(config),
    )
