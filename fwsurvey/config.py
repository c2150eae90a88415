"""Survey configuration: which frameworks to compare and how to reach their sources.

The configuration is a TOML file (``fwsurvey.toml`` by default). Adding a framework to the
survey needs only a new ``[frameworks.NAME]`` table. Every problem is reported as a
:class:`ConfigError` naming the file and the dotted key, e.g.
``fwsurvey.toml: frameworks.trax.pypi: expected a list of strings, got 'trax'``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_NAME = "fwsurvey.toml"

_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the file and key at fault."""

    def __init__(self, path: Path | str, key: str | None, message: str):
        self.path = Path(path)
        self.key = key
        self.message = message
        where = f"{self.path.name}: {key}: " if key else f"{self.path}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class Framework:
    """One framework under survey."""

    key: str
    name: str
    pypi: tuple[str, ...]
    github: str | None = None
    docs: str | None = None
    git_clone: Path | None = None
    imports: tuple[str, ...] = ()
    engine_for: str | None = None


@dataclass(frozen=True)
class SourceSettings:
    """Settings shared by every collector, plus the source's own options."""

    name: str
    enabled: bool = True
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SurveyConfig:
    """A validated survey configuration. Paths are absolute."""

    path: Path
    title: str
    article: str
    database: Path
    report_dir: Path
    datasette: Path
    compare: tuple[str, str]
    frameworks: dict[str, Framework]
    sources: dict[str, SourceSettings]
    sha256: str
    #: ``[analyzers.*]`` tables, validated by the analyzers themselves (fwsurvey.analyzers).
    analyzers: dict[str, Any] = field(default_factory=dict)
    #: The ``[kernels]`` table, validated by the train stage (fwsurvey.kernels.stage).
    kernels: dict[str, Any] = field(default_factory=dict)
    #: ``survey.claims``: the claims registry; None: claims.toml beside the config, else the
    #: repository's (fwsurvey.claims.default_registry_path).
    claims: Path | None = None

    def source(self, name: str) -> SourceSettings:
        """Settings for source ``name``; defaults when the file does not mention it."""
        return self.sources.get(name, SourceSettings(name=name))

    def framework_of_package(self) -> dict[str, str]:
        """Map each configured PyPI package to the key of its framework."""
        return {pkg: fw.key for fw in self.frameworks.values() for pkg in fw.pypi}


class _Reader:
    """Typed access to one TOML table with errors that name the dotted key."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str):
        self.path, self.table, self.prefix = path, table, prefix
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str | None, message: str) -> ConfigError:
        return ConfigError(self.path, self.key(name) if name else self.prefix or None, message)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, required=False):
        self.seen.add(name)
        if name not in self.table:
            if required or default is ...:
                raise self.error(name, "required key is missing")
            return default
        value = self.table[name]
        # bool is an int in Python; a number given as true/false is a mistake.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def get_str_list(self, name: str, default: Any = ..., *, pattern: re.Pattern | None = None):
        value = self.get(name, list, default)
        if value is default:
            return default
        if not all(isinstance(v, str) and v for v in value):
            raise self.error(name, f"expected a list of non-empty strings, got {value!r}")
        if pattern is not None:
            for v in value:
                if not pattern.match(v):
                    raise self.error(name, f"{v!r} is not a valid name")
        return tuple(value)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (misspelt?)")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def load_config(path: Path | str) -> SurveyConfig:
    """Read and validate a survey configuration file."""
    path = Path(path).absolute()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, "configuration file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read configuration file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from None
    return parse_config(raw, path, sha256=hashlib.sha256(data).hexdigest())


def parse_config(raw: dict[str, Any], path: Path, sha256: str = "") -> SurveyConfig:
    """Validate an already-parsed configuration (``path`` names it in errors and anchors paths)."""
    base = path.parent
    top = _Reader(path, raw, "")
    survey = _Reader(path, top.get("survey", dict, {}), "survey")
    frameworks_raw = top.get("frameworks", dict, required=True)
    sources_raw = top.get("sources", dict, {})
    analyzers_raw = top.get("analyzers", dict, {})
    kernels_raw = top.get("kernels", dict, {})
    top.reject_unknown()

    if len(frameworks_raw) < 2:
        raise ConfigError(path, "frameworks", "configure at least two frameworks to compare")
    frameworks: dict[str, Framework] = {}
    for key, table in frameworks_raw.items():
        if not _KEY_RE.match(key):
            raise ConfigError(path, f"frameworks.{key}", "framework keys are lower-case names")
        if not isinstance(table, dict):
            raise ConfigError(path, f"frameworks.{key}", f"expected a table, got {table!r}")
        frameworks[key] = _parse_framework(path, base, key, table)

    for fw in frameworks.values():
        if fw.engine_for is not None and fw.engine_for not in frameworks:
            raise ConfigError(path, f"frameworks.{fw.key}.engine_for",
                              f"names {fw.engine_for!r}, which is not a configured framework")
    seen_pkgs: dict[str, str] = {}
    for fw in frameworks.values():
        for pkg in fw.pypi:
            if pkg.lower() in seen_pkgs:
                raise ConfigError(path, f"frameworks.{fw.key}.pypi",
                                  f"package {pkg!r} is already listed under "
                                  f"frameworks.{seen_pkgs[pkg.lower()]}")
            seen_pkgs[pkg.lower()] = fw.key

    default_compare = list(frameworks)[:2]
    compare = survey.get("compare", list, default_compare)
    if len(compare) != 2 or not all(isinstance(c, str) for c in compare):
        raise survey.error("compare", f"expected two framework keys, got {compare!r}")
    for c in compare:
        if c not in frameworks:
            raise survey.error("compare", f"{c!r} is not a configured framework")

    config = SurveyConfig(
        path=path,
        title=survey.get("title", str, "Framework survey"),
        article=survey.get("article", str, ""),
        database=_resolve(base, survey.get("database", str, "out/fwsurvey.db")),
        report_dir=_resolve(base, survey.get("report_dir", str, "out/report")),
        datasette=_resolve(base, survey.get("datasette", str, "datasette.yml")),
        compare=(compare[0], compare[1]),
        frameworks=frameworks,
        sources={name: _parse_source(path, name, table) for name, table in sources_raw.items()},
        sha256=sha256,
        analyzers=analyzers_raw,
        kernels=kernels_raw,
        claims=(_resolve(base, claims) if (claims := survey.get("claims", str, None)) else None),
    )
    survey.reject_unknown()
    return config


def _parse_framework(path: Path, base: Path, key: str, table: dict[str, Any]) -> Framework:
    r = _Reader(path, table, f"frameworks.{key}")
    github = r.get("github", str, None)
    if github is not None and not _REPO_RE.match(github):
        raise r.error("github", f"expected OWNER/REPO, got {github!r}")
    docs = r.get("docs", str, None)
    if docs is not None and not docs.startswith(("http://", "https://")):
        raise r.error("docs", f"expected an http(s) URL, got {docs!r}")
    clone = r.get("git_clone", str, None)
    fw = Framework(
        key=key,
        name=r.get("name", str, required=True),
        pypi=r.get_str_list("pypi", (), pattern=_PACKAGE_RE),
        github=github,
        docs=docs,
        git_clone=_resolve(base, clone) if clone else None,
        imports=r.get_str_list("imports", ()),
        engine_for=r.get("engine_for", str, None),
    )
    r.reject_unknown()
    return fw


def _parse_source(path: Path, name: str, table: Any) -> SourceSettings:
    if not isinstance(table, dict):
        raise ConfigError(path, f"sources.{name}", f"expected a table, got {table!r}")
    r = _Reader(path, table, f"sources.{name}")
    timeout = float(r.get("timeout", (int, float), 30.0))
    retries = r.get("retries", int, 4)
    backoff = float(r.get("backoff", (int, float), 1.0))
    if timeout <= 0:
        raise r.error("timeout", "must be a positive number of seconds")
    if retries < 1:
        raise r.error("retries", "must be at least 1 (the first attempt counts)")
    if backoff < 0:
        raise r.error("backoff", "must not be negative")
    common = {"enabled", "timeout", "retries", "backoff"}
    settings = SourceSettings(
        name=name,
        enabled=r.get("enabled", bool, True),
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        options={k: v for k, v in table.items() if k not in common},
    )
    return settings
