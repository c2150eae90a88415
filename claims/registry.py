"""Reading and validating the claims registry (``claims.toml``).

A registry holds ``[rule]`` defaults, ``[metrics.ID]`` tables and ``[[claims]]`` entries.
Each file table is a :class:`~fwsurvey.model.ConfigModel`, so every mistake is one line
naming the file and the key, e.g. ``claims.toml: claims[3] (some-id).favours: expected a or
b, got 'c'``.

A metric is SQL over the store that returns one row per framework and item with the columns
``framework`` and ``value`` (optionally ``item``, ``run_id``, ``source``, ``fetched_at``,
``note``), with the parameters ``:run_id`` (the evaluating run: use data as of that run),
``:a`` and ``:b`` (the compared frameworks' keys). It is written either as ``sql`` or, for
the common case "a column of a history table as of the run", as a ``[metrics.ID.from]``
table that :func:`expand_from` turns into SQL:

``table``
    The history table (``run_id`` is part of its key).
``value``
    The value: a column of ``table`` or an SQL expression over its columns.
``item``, ``note``
    Optional expressions: what the value is about (one evidence row per item), a caveat.
``where``
    Optional condition on the rows that count (``framework IN (:a, :b)`` is always added).
``per``
    Columns the newest run is found per: the value of a row comes from the newest run up
    to ``:run_id`` that wrote a row with the same values in these columns. Absent: the
    newest run that wrote the table at all.
``newest_where``
    Optional condition on the rows that count when finding that newest run (e.g.
    ``task IS NOT NULL``: runs of ``fwsurvey analyze PATHS`` measure no paired task).
``join``
    ``"COLUMN = pypi"`` or ``"COLUMN = github"``: the table's rows belong to a framework
    through ``survey_frameworks`` (``COLUMN`` holds the framework's package or repository,
    as configured in the evaluating run) instead of through its own ``framework`` column.
    ``COLUMN`` is then also a ``per`` column.

Expressions name the table's columns bare. ``fwsurvey claims --show-sql ID`` prints the SQL
a metric (or each metric of a claim) runs.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from fwsurvey.config import SurveyConfig
from fwsurvey.errors import ConfigError
from fwsurvey.model import ConfigModel, validate

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_COLUMN_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
#: ``survey_frameworks`` columns a ``from.join`` may match (see fwsurvey.claims.judge).
JOIN_COLUMNS = ("pypi", "github")
_JOIN_RE = re.compile(rf"^\s*([a-z_][a-z0-9_]*)\s*=\s*({'|'.join(JOIN_COLUMNS)})\s*$")


@dataclass(frozen=True)
class Section:
    """One section of the article: its claims name it by ``slug``."""

    slug: str
    title: str
    measured_by: str


#: The article's six sections, in its order. Their atomic claims come from the registry,
#: their verdicts from the store (tables claims, claim_evidence); the report follows them.
SECTIONS = (
    Section("ease-of-use", "Ease of use",
            "API ergonomics of paired implementations (analyzers)"),
    Section("graph-building", "Graph building",
            "compile counts and throughput under varying shapes (kernels)"),
    Section("model-architecture", "Model architecture",
            "library surface inventory (analyzers)"),
    Section("training-deployment", "Training & deployment",
            "library surface inventory and scaling runs (analyzers, kernels)"),
    Section("community-ecosystem", "Community & ecosystem",
            "PyPI release history; GitHub activity, git history and downloads (collectors)"),
    Section("performance-scalability", "Performance & scalability",
            "paired reference trainings and scaling runs (kernels)"),
)
#: Section slugs a claim may name.
SECTION_SLUGS = tuple(s.slug for s in SECTIONS)


class RegistryError(ConfigError):
    """The claims registry is invalid; the message names the file and the key."""


# -- value types --------------------------------------------------------------------------------

def _text(value: Any) -> Any:
    """A non-empty string, stripped (the registry's multi-line strings end in newlines)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else the registry's one-line wording."""
    if value not in allowed:
        raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _non_negative(value: Any) -> Any:
    if not _is_number(value) or value < 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return value


def _positive(value: Any) -> Any:
    if not _is_number(value) or value <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return value


def _column(value: Any) -> Any:
    if not isinstance(value, str) or not _COLUMN_RE.match(value):
        raise ValueError(f"expected an SQL name (a-z, 0-9 and _), got {value!r}")
    return value


Text = Annotated[str, BeforeValidator(_text)]
#: Kept as written (int or float): the rule is stored as JSON and 45 must stay 45.
NonNegative = Annotated[int | float, BeforeValidator(_non_negative)]
Positive = Annotated[int | float, BeforeValidator(_positive)]
Column = Annotated[str, BeforeValidator(_column)]


# -- the rule -----------------------------------------------------------------------------------

class Rule(ConfigModel):
    """How evidence becomes a verdict (registry defaults, overridable per claim)."""

    support_share: NonNegative = 0.75
    contradict_share: NonNegative = 0.25
    margin: NonNegative = 0.10
    max_age_days: NonNegative = 45.0
    min_metric_coverage: NonNegative = 0.5

    @field_validator("support_share", "contradict_share", "margin", "min_metric_coverage")
    @classmethod
    def _share(cls, value: float) -> float:
        if value > 1:
            raise ValueError("expected a share between 0 and 1")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Rule:
        if self.contradict_share >= self.support_share:
            raise ValueError("contradict_share must be below support_share")
        return self


def _with_base(value: Any, info: ValidationInfo) -> Any:
    """A claim's ``rule`` table over the registry's ``[rule]`` (from the context)."""
    if isinstance(value, dict):
        return {**info.context["rule"].model_dump(), **value}
    return value


# -- metrics ------------------------------------------------------------------------------------

class From(ConfigModel):
    """A metric written as "a column of a history table as of the run" (see the docstring)."""

    table: Column
    value: Text
    item: Text | None = None
    note: Text | None = None
    where: Text | None = None
    per: list[Column] = Field(default_factory=list)
    newest_where: Text | None = None
    join: Text | None = None

    @field_validator("join")
    @classmethod
    def _join(cls, value: str | None) -> str | None:
        if value is not None and not _JOIN_RE.match(value):
            raise ValueError(f"expected \"COLUMN = pypi\" or \"COLUMN = github\", got {value!r}")
        return value


#: Validity tiers, strongest first: whether a thing works at all, a measured behaviour, a
#: static count. The tier is the metric's weight in a claim (see TIER_WEIGHTS).
TIERS = ("works", "behaviour", "count")
#: Tier weights of the main judgement; the sensitivity pass tries the alternatives.
TIER_WEIGHTS = {"works": 3.0, "behaviour": 2.0, "count": 1.0}
#: Device scopes: where a measurement means something. A ``gpu`` metric's CPU rows never
#: count (a CPU timing never decides a GPU claim).
DEVICE_SCOPES = ("cpu", "gpu", "any")
#: Claim types (see Claim).
CLAIM_TYPES = ("comparative", "possession", "hedged", "unmeasurable")


class MetricTable(ConfigModel):
    """A ``[metrics.ID]`` table as written: the SQL and the metric's decision spec.

    The decision spec: ``better`` (direction); the minimum meaningful difference, relative
    (``margin``; absent: the rule's) and/or absolute in the metric's unit (``min_abs``: a
    difference must exceed both); ``tier`` (its weight); ``device_scope``; ``timing``
    (judged statistically from ``kernel_samples``, see fwsurvey.claims.stats);
    ``failure_counts`` (a failed run counts against the framework that failed; default yes
    for ``works`` and timing metrics); ``bar`` (the absolute bar of possession claims: the
    framework has the capability when its value reaches it).
    """

    label: Text
    better: str
    sql: Text | None = None
    from_: From | None = Field(default=None, alias="from")
    unit: Text | None = None
    sources: list[str] = Field(default_factory=list)
    max_age_days: Positive | None = None
    note: Text | None = None
    tier: str = "count"
    device_scope: str = "any"
    margin: NonNegative | None = None
    min_abs: NonNegative = 0
    timing: bool = False
    failure_counts: bool | None = None
    bar: int | float | None = None

    @field_validator("tier")
    @classmethod
    def _tier(cls, value: str) -> str:
        return _one_of(value, TIERS)

    @field_validator("device_scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        return _one_of(value, DEVICE_SCOPES)

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: float | None) -> float | None:
        if value is not None and value > 1:
            raise ValueError("expected a share between 0 and 1")
        return value

    @field_validator("better")
    @classmethod
    def _better(cls, value: str) -> str:
        if value not in ("higher", "lower"):
            raise ValueError(f"expected higher or lower, got {value!r}")
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError("expected a list of source names")
        return value


@dataclass(frozen=True)
class Metric:
    """One measurement that bears on claims, as SQL over the store."""

    id: str
    label: str
    better: str  # higher | lower
    sql: str  # as run: a [metrics.ID.from] table is expanded
    unit: str | None = None
    sources: tuple[str, ...] = ()
    max_age_days: float | None = None
    note: str | None = None
    tier: str = "count"
    device_scope: str = "any"
    margin: float | None = None  # relative; None: the rule's margin
    min_abs: float = 0.0
    timing: bool = False
    failure_counts: bool = False
    bar: float | None = None
    explicit: frozenset[str] = frozenset()  # decision-spec keys the registry wrote

    def decision_spec(self) -> dict[str, Any]:
        """The decision spec as stored with the evidence (JSON-able)."""
        return {"better": self.better, "tier": self.tier, "device_scope": self.device_scope,
                "margin": self.margin, "min_abs": self.min_abs, "timing": self.timing,
                "failure_counts": self.failure_counts, "bar": self.bar}


#: The keys of a metric's decision spec (a test checks the shipped registry writes them).
DECISION_KEYS = ("tier", "device_scope")


def expand_from(spec: From) -> str:
    """The SQL a ``[metrics.ID.from]`` table stands for.

    The table's columns stay in scope bare: with ``join``, the frameworks come from a
    sub-select whose only columns are ``survey_framework`` and ``survey_key``.
    """
    table = spec.table
    per = list(spec.per)
    first = ["t.framework" if spec.join is None else "f.survey_framework AS framework"]
    if spec.item is not None:
        first.append(f"{spec.item} AS item")
    first.append(f"{spec.value} AS value")
    select = [", ".join(first)]
    if spec.note is not None:
        select.append(f"{spec.note} AS note")
    select.append("t.run_id, t.source, t.fetched_at")
    if spec.join is None:
        source = f"FROM {table} t"
        where = ["t.framework IN (:a, :b)"]
    else:
        column, key = _JOIN_RE.match(spec.join).groups()
        source = (f"FROM (SELECT framework AS survey_framework, {key} AS survey_key"
                  " FROM survey_frameworks\n"
                  "      WHERE run_id = :run_id AND framework IN (:a, :b)) f\n"
                  f"JOIN {table} t ON t.{column} = f.survey_key")
        where = []
        per = [column, *(c for c in per if c != column)]
    if spec.where is not None:
        where.append(f"({spec.where})")
    newest = [f"{c} = t.{c}" for c in per]
    if spec.newest_where is not None:
        newest.append(f"({spec.newest_where})")
    newest.append("run_id <= :run_id")
    where.append(f"t.run_id = (SELECT MAX(run_id) FROM {table} WHERE {' AND '.join(newest)})")
    return "\n".join(["SELECT " + ",\n       ".join(select), source,
                      "WHERE " + "\n  AND ".join(where)])


def _metric(path: Path, mid: str, table: dict[str, Any]) -> Metric:
    key = f"metrics.{mid}"
    if not _ID_RE.match(mid):
        raise RegistryError(path, key, "metric ids are lower-case names")
    model = validate(MetricTable, table, path, key)
    if model.sql is None and model.from_ is None:
        raise RegistryError(path, f"{key}.sql",
                            f"required key is missing (or write [{key}.from] instead)")
    if model.sql is not None and model.from_ is not None:
        raise RegistryError(path, f"{key}.sql", f"give sql or [{key}.from], not both")
    sql = model.sql if model.from_ is None else expand_from(model.from_)
    failure_counts = model.failure_counts
    if failure_counts is None:  # default: failures are evidence for works-or-not and timings
        failure_counts = model.tier == "works" or model.timing
    return Metric(mid, model.label, model.better, sql, model.unit, tuple(model.sources),
                  float(model.max_age_days) if model.max_age_days is not None else None,
                  model.note, model.tier, model.device_scope,
                  float(model.margin) if model.margin is not None else None,
                  float(model.min_abs), model.timing, failure_counts,
                  float(model.bar) if model.bar is not None else None,
                  frozenset(model.model_fields_set))


# -- claims -------------------------------------------------------------------------------------

class Claim(ConfigModel):
    """One atomic claim of the article (a ``[[claims]]`` entry).

    ``type``: ``comparative`` (the favoured framework is ahead on a property),
    ``possession`` (the favoured framework has a capability: each metric judged against
    its ``bar``, not against the other side), ``hedged`` ("the other may not match it":
    supported when the favoured side is clearly ahead in at least one scenario), or
    ``unmeasurable`` (``unmeasurable`` says why; no metrics). ``primary``: the metrics a
    verdict cannot do without (default: all of ``metrics``). ``against = "engine"`` compares
    ``b`` with its engine (e.g. Trax with plain JAX) instead of with ``a``.
    """

    id: str
    section: str
    text: Text
    sentence: Text | None = None
    favours: str  # a | b
    type: str = "comparative"
    unmeasurable: Text | None = None  # why no data can settle it (no metrics then)
    unsettleable: Text | None = None  # the former name of ``unmeasurable``
    metrics: list[str] = Field(default_factory=list, validate_default=True)
    primary: list[str] = Field(default_factory=list)
    device_scope: str | None = None
    against: str = "a"
    rule: Annotated[Rule, BeforeValidator(_with_base)] = Field(
        default_factory=dict, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _unmeasurable(cls, value: Any) -> Any:
        """``unsettleable`` (the former key) is ``unmeasurable``; either makes the type."""
        if isinstance(value, dict):
            value = dict(value)
            if value.get("unsettleable") and not value.get("unmeasurable"):
                value["unmeasurable"] = value["unsettleable"]
            if value.get("unmeasurable") and "type" not in value:
                value["type"] = "unmeasurable"
            if "primary" not in value and isinstance(value.get("metrics"), list):
                value["primary"] = list(value["metrics"])
        return value

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return _one_of(value, CLAIM_TYPES)

    @field_validator("device_scope")
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        if value is not None:
            _one_of(value, DEVICE_SCOPES)
        return value

    @field_validator("against")
    @classmethod
    def _against(cls, value: str) -> str:
        if value not in ("a", "engine"):
            raise ValueError(f"expected a or engine, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Claim:
        if self.type == "unmeasurable":
            if not self.unmeasurable:
                raise ValueError("an unmeasurable claim says why (unmeasurable = \"...\")")
            if self.metrics:
                raise ValueError("an unmeasurable claim names no metrics")
            return self
        if self.unmeasurable:
            raise ValueError(f"a {self.type} claim is measured: drop unmeasurable or set"
                             " type = \"unmeasurable\"")
        unknown = [m for m in self.primary if m not in self.metrics]
        if unknown:
            raise ValueError(f"primary metrics must be among metrics: {unknown}")
        if not self.primary:
            raise ValueError("name at least one primary metric (no verdict without one)")
        if self.type == "possession":
            metrics = info.context["metrics"]
            barless = [m for m in self.metrics if metrics[m].bar is None]
            if barless:
                raise ValueError(f"a possession claim judges each metric against its bar;"
                                 f" no bar: {barless}")
        return self

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError("claim ids are lower-case names")
        return value

    @field_validator("section")
    @classmethod
    def _section(cls, value: str) -> str:
        if value not in SECTION_SLUGS:
            raise ValueError(f"unknown section {value!r}; known: {', '.join(SECTION_SLUGS)}")
        return value

    @field_validator("text")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(a="A", b="B", b_engine="", engine="E")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{a}}, {{b}}, {{b_engine}} and {{engine}} may be filled in"
                             f" ({exc})") from None
        return value

    @field_validator("favours")
    @classmethod
    def _favours(cls, value: str) -> str:
        if value not in ("a", "b"):
            raise ValueError(f"expected a or b, got {value!r}")
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise ValueError("expected a list of metric ids")
        if not value and not info.data.get("unmeasurable"):
            raise ValueError("name the metrics that bear on the claim, or say why none can"
                             " (unmeasurable = \"...\")")
        for mid in value:
            if mid not in info.context["metrics"]:
                raise ValueError(f"unknown metric {mid!r}")
        return value


class RegistryFile(ConfigModel):
    """``claims.toml`` at the top level; its tables are validated one by one."""

    rule: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    claims: list[dict[str, Any]] = Field(default_factory=list, validate_default=True)

    @field_validator("claims", mode="before")
    @classmethod
    def _some(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("expected at least one [[claims]] entry")
        return value


@dataclass(frozen=True)
class Registry:
    """A validated registry: the rule, the metrics (SQL expanded) and the claims."""

    path: Path
    sha256: str
    rule: Rule
    metrics: dict[str, Metric]
    claims: tuple[Claim, ...]


def default_registry_path(config: SurveyConfig) -> Path:
    """``survey.claims`` of the config, else claims.toml beside it, else the repository's."""
    if config.claims is not None:
        return config.claims
    beside = config.path.parent / "claims.toml"
    if beside.exists():
        return beside
    return Path(__file__).resolve().parents[1] / "claims.toml"


def load_registry(path: Path | str) -> Registry:
    """Read and validate a claims registry (RegistryError names the file and the key)."""
    path = Path(path).absolute()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(path, None, "claims registry not found") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(path, None, f"invalid TOML: {exc}") from None
    try:
        return _registry(path, hashlib.sha256(data).hexdigest(), raw)
    except RegistryError:
        raise
    except ConfigError as exc:
        raise RegistryError(exc.path, exc.key, exc.message) from None


def _registry(path: Path, sha256: str, raw: dict[str, Any]) -> Registry:
    top = validate(RegistryFile, raw, path)
    rule = validate(Rule, top.rule, path, "rule")
    metrics = {mid: _metric(path, mid, table) for mid, table in top.metrics.items()}
    claims: list[Claim] = []
    seen: set[str] = set()
    context = {"rule": rule, "metrics": metrics}
    for index, table in enumerate(top.claims):
        cid = table.get("id")
        key = f"claims[{index}]"
        if isinstance(cid, str) and _ID_RE.match(cid):
            if cid in seen:
                raise RegistryError(path, f"{key}.id", f"duplicate claim id {cid!r}")
            key += f" ({cid})"
        claim = validate(Claim, table, path, key, context)
        seen.add(claim.id)
        claims.append(claim)
    return Registry(path, sha256, rule, metrics, tuple(claims))


def metrics_for(registry: Registry, ident: str) -> list[Metric]:
    """The metric ``ident``, or the metrics of the claim ``ident`` (KeyError if neither)."""
    if ident in registry.metrics:
        return [registry.metrics[ident]]
    for claim in registry.claims:
        if claim.id == ident:
            return [registry.metrics[m] for m in claim.metrics]
    raise KeyError(ident)
