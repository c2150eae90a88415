"""Survey configuration: which frameworks to compare and how to reach their sources.

The configuration is a TOML file (``fwsurvey.toml`` by default). Adding a framework to the
survey needs only a new ``[frameworks.NAME]`` table. The file is described by the models
below (:mod:`fwsurvey.model`), so every problem is one :class:`ConfigError` naming the file
and the dotted key, e.g. ``fwsurvey.toml: frameworks.trax.pypi: expected a list, got 'trax'``.

``[survey]``, ``[frameworks.*]``, ``[community]`` (how the community metrics tell machines and
organisations apart) and the keys every source shares (``enabled``, ``timeout``, ``retries``,
``backoff``) are validated here. A source's own options, ``[analyzers.*]`` and
``[kernels]`` are kept as written and validated by the stage that owns them
(``Stage.check``), which is where their meaning lives.

What derives from the database lives beside it: the report folder (``report/``, unless
``survey.report_dir`` says otherwise) and the GitHub HTTP cache (``http-cache/github``). A
database other than ``survey.database`` (``--db``, ``FWSURVEY_DB``) takes them along
(:meth:`SurveyConfig.with_database`): the configured report folder belongs to the configured
database, so a copy never overwrites its report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict

from fwsurvey.errors import ConfigError
from fwsurvey.model import ConfigModel, validate

__all__ = ["ConfigError", "Framework", "SourceSettings", "SurveyConfig", "load_config"]

DEFAULT_CONFIG_NAME = "fwsurvey.toml"

_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


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
    """Settings shared by every collector, plus the source's own options.

    ``options`` holds the source's other keys as written; the collector validates them
    against its own options model (``Collector.Options``).
    """

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
    #: ``[analyzers.*]`` tables, validated by the analyze stage (fwsurvey.analyzers.stage).
    analyzers: dict[str, Any] = field(default_factory=dict)
    #: The ``[kernels]`` table, validated by the train stage (fwsurvey.kernels.stage).
    kernels: dict[str, Any] = field(default_factory=dict)
    #: ``survey.claims``: the claims registry; None: claims.toml beside the config, else the
    #: repository's (fwsurvey.claims.default_registry_path).
    claims: Path | None = None
    #: ``[community]``: bot rules, organisations and windows of the community metrics.
    community: CommunityTable = field(default_factory=lambda: CommunityTable())

    def source(self, name: str) -> SourceSettings:
        """Settings for source ``name``; defaults when the file does not mention it."""
        return self.sources.get(name, SourceSettings(name=name))

    def with_database(self, database: Path | str) -> SurveyConfig:
        """This configuration run against ``database``: when it is not ``survey.database``,
        the report folder moves to ``report/`` beside it (the GitHub HTTP cache follows
        ``database`` by itself)."""
        database = Path(database).absolute()
        if database == self.database:
            return self
        return dataclasses.replace(self, database=database,
                                   report_dir=database.parent / "report")

    def framework_of_package(self) -> dict[str, str]:
        """Map each configured PyPI package to the key of its framework."""
        return {pkg: fw.key for fw in self.frameworks.values() for pkg in fw.pypi}


# -- the file's models -----------------------------------------------------------------------
# Validators raise ValueError with the message shown to the user (fwsurvey.model).

def _framework_key(value: str) -> str:
    if not _KEY_RE.match(value):
        raise ValueError("framework keys are lower-case names")
    return value


def _package(value: str) -> str:
    if not _PACKAGE_RE.match(value):
        raise ValueError(f"{value!r} is not a valid name")
    return value


def _repo(value: str) -> str:
    if not _REPO_RE.match(value):
        raise ValueError(f"expected OWNER/REPO, got {value!r}")
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _number(value: Any) -> Any:
    # bool is an int in Python; a number given as true/false is a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected an integer or a number, got {value!r}")
    return float(value)


def _positive_seconds(value: float) -> float:
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _attempts(value: int) -> int:
    if value < 1:
        raise ValueError("must be at least 1 (the first attempt counts)")
    return value


def _not_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _two_keys(value: list[str]) -> list[str]:
    if len(value) != 2:
        raise ValueError(f"expected two framework keys, got {value!r}")
    return value


def _at_least_two(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) < 2:
        raise ValueError("configure at least two frameworks to compare")
    return value


Number = Annotated[float, BeforeValidator(_number)]


class FrameworkTable(ConfigModel):
    """``[frameworks.NAME]``: a framework's name and where its packages and code live."""

    name: str
    pypi: list[Annotated[str, AfterValidator(_package)]] = []
    github: Annotated[str, AfterValidator(_repo)] | None = None
    docs: Annotated[str, AfterValidator(_url)] | None = None
    git_clone: str | None = None
    imports: list[Annotated[str, AfterValidator(_non_empty)]] = []
    engine_for: str | None = None


class SurveyTable(ConfigModel):
    """``[survey]``: the report's title, the compared pair, where the outputs go."""

    title: str = "Framework survey"
    article: str = ""
    compare: Annotated[list[str], AfterValidator(_two_keys)] | None = None
    database: str = "out/fwsurvey.db"
    #: Default: ``report`` beside the database.
    report_dir: str | None = None
    datasette: str = "datasette.yml"
    claims: str | None = None


class SourceTable(ConfigModel):
    """``[sources.NAME]``: the keys every source shares; the others are the source's own."""

    # The source's own keys are validated by its collector (Collector.Options).
    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    timeout: Annotated[Number, AfterValidator(_positive_seconds)] = 30.0
    retries: Annotated[int, AfterValidator(_attempts)] = 4
    backoff: Annotated[Number, AfterValidator(_not_negative)] = 1.0


def _positive_days(value: int) -> int:
    if value < 1:
        raise ValueError("must be at least 1 day")
    return value


def _domain(value: str) -> str:
    if not value or "@" in value or value != value.strip().lower():
        raise ValueError(f"expected a lower-case e-mail domain such as 'google.com', got {value!r}")
    return value


Days = Annotated[int, AfterValidator(_positive_days)]
Domain = Annotated[str, AfterValidator(_domain)]

#: Machine accounts seen in the surveyed repositories (GitHub logins, git author names or
#: e-mails); the shipped fwsurvey.toml repeats them with where each was seen.
DEFAULT_BOTS = (
    "pytorchmergebot", "pytorchbot", "pytorchupdatebot", "pytorch-bot", "facebook-github-bot",
    "copybara-service", "copybara-worker@google.com", "A. Unique TensorFlower",
    "gardener@tensorflow.org", "TensorFlower Gardener", "dependabot", "github-actions",
)
DEFAULT_BOT_PATTERNS = ("*[bot]", "*[bot]@*", "*-bot", "*-bot@*", "*_bot")
#: Mail providers of individuals: their authors count as "independent".
DEFAULT_PERSONAL_DOMAINS = (
    "gmail.com", "googlemail.com", "hotmail.com", "outlook.com", "live.com", "yahoo.com",
    "icloud.com", "me.com", "protonmail.com", "proton.me", "qq.com", "163.com", "126.com",
    "foxmail.com", "mail.ru", "yandex.ru", "gmx.de", "web.de", "fastmail.com",
)
#: Addresses that hide the author's affiliation: their authors count as "unknown".
DEFAULT_UNKNOWN_DOMAINS = ("users.noreply.github.com", "noreply.github.com", "localhost")


class CommunityTable(ConfigModel):
    """``[community]``: how the community metrics (fwsurvey.collectors.metrics) count.

    ``bots`` and ``bot_patterns`` (``*`` and ``?`` wildcards, case-insensitive) mark machine
    accounts; ``organizations`` maps an e-mail domain (and its subdomains) to the
    organisation behind it; the windows are in days, ending at the time of the data.
    """

    bots: list[Annotated[str, AfterValidator(_non_empty)]] = list(DEFAULT_BOTS)
    bot_patterns: list[Annotated[str, AfterValidator(_non_empty)]] = list(DEFAULT_BOT_PATTERNS)
    organizations: dict[Domain, Annotated[str, AfterValidator(_non_empty)]] = {}
    personal_domains: list[Domain] = list(DEFAULT_PERSONAL_DOMAINS)
    unknown_domains: list[Domain] = list(DEFAULT_UNKNOWN_DOMAINS)
    #: Issues and pull requests opened in this window: time to first response, closure ratio.
    issue_window_days: Days = 90
    #: Releases, git commits and authors, the recent absence factor and organisation shares.
    activity_window_days: Days = 365
    #: Scorecard's "Maintained" look-back.
    maintained_days: Days = 90


class ConfigFile(ConfigModel):
    """The whole ``fwsurvey.toml``."""

    # First, so that its errors are reported before the others.
    frameworks: Annotated[dict[Annotated[str, AfterValidator(_framework_key)], FrameworkTable],
                          AfterValidator(_at_least_two)]
    survey: SurveyTable = SurveyTable()
    sources: dict[str, SourceTable] = {}
    analyzers: dict[str, Any] = {}
    kernels: dict[str, Any] = {}
    community: CommunityTable = CommunityTable()


# -- loading -----------------------------------------------------------------------------------

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
    file = validate(ConfigFile, raw, path)
    _check_references(file, path)
    base = path.parent
    survey = file.survey
    compare = survey.compare or list(file.frameworks)[:2]
    database = _resolve(base, survey.database)
    return SurveyConfig(
        path=path,
        title=survey.title,
        article=survey.article,
        database=database,
        report_dir=(_resolve(base, survey.report_dir) if survey.report_dir is not None
                    else database.parent / "report"),
        datasette=_resolve(base, survey.datasette),
        compare=(compare[0], compare[1]),
        frameworks={key: _framework(base, key, table) for key, table in file.frameworks.items()},
        sources={name: SourceSettings(name=name, enabled=table.enabled, timeout=table.timeout,
                                      retries=table.retries, backoff=table.backoff,
                                      options=dict(table.model_extra or {}))
                 for name, table in file.sources.items()},
        sha256=sha256,
        analyzers=file.analyzers,
        kernels=file.kernels,
        claims=_resolve(base, survey.claims) if survey.claims else None,
        community=file.community,
    )


def _check_references(file: ConfigFile, path: Path) -> None:
    """What one table says about another: engines, packages listed twice, the compared pair."""
    frameworks = file.frameworks
    for key, fw in frameworks.items():
        if fw.engine_for is not None and fw.engine_for not in frameworks:
            raise ConfigError(path, f"frameworks.{key}.engine_for",
                              f"names {fw.engine_for!r}, which is not a configured framework")
    seen_pkgs: dict[str, str] = {}
    for key, fw in frameworks.items():
        for pkg in fw.pypi:
            if pkg.lower() in seen_pkgs:
                raise ConfigError(path, f"frameworks.{key}.pypi",
                                  f"package {pkg!r} is already listed under "
                                  f"frameworks.{seen_pkgs[pkg.lower()]}")
            seen_pkgs[pkg.lower()] = key
    for c in file.survey.compare or ():
        if c not in frameworks:
            raise ConfigError(path, "survey.compare", f"{c!r} is not a configured framework")


def _framework(base: Path, key: str, table: FrameworkTable) -> Framework:
    return Framework(
        key=key,
        name=table.name,
        pypi=tuple(table.pypi),
        github=table.github,
        docs=table.docs,
        git_clone=_resolve(base, table.git_clone) if table.git_clone else None,
        imports=tuple(table.imports),
        engine_for=table.engine_for,
    )
