"""The analyzers' settings: ``[analyzers.ergonomics]``, ``[analyzers.library_surface.FW]``
and ``[analyzers.distributed_strategies.FW]``.

Described by models (:mod:`fwsurvey.model`), so every mistake is one error naming the dotted
key. Everything framework-specific (ceremony calls, where each library keeps its layers,
optimizers, ...) lives in the configuration, so a new framework needs only config and its
paired files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, RootModel, ValidationInfo

from fwsurvey.config import SurveyConfig
from fwsurvey.model import ConfigModel, validate

#: Metrics the composite may weigh (columns of ergonomics_metrics).
COMPOSITE_METRICS = (
    "concepts", "call_sites", "positional_args", "keyword_args", "default_keywords",
    "framework_subclasses", "overridden_methods", "ceremony_calls", "sloc", "lloc",
    "cyclomatic", "cognitive", "max_nesting",
)

DEFAULT_WEIGHTS = {"concepts": 1.0, "call_sites": 0.5, "keyword_args": 0.25,
                   "framework_subclasses": 0.5, "overridden_methods": 0.5,
                   "ceremony_calls": 1.0, "lloc": 1.0, "cognitive": 1.0, "max_nesting": 0.5}

#: Library surface categories, in report order.
SURFACE_CATEGORIES = ("layers", "combinators", "losses_metrics", "optimizers", "lr_schedules",
                      "data", "models", "export", "distributed")
#: What each category counts, written once for every framework. The code is
#: ``introspect_library.py`` (``RULES`` there); a framework maps the concepts to its own types
#: (``types``) and namespaces (``modules``) in ``[analyzers.library_surface.FW]``. Shown in
#: ``library_summary.rule``; each symbol's evidence is ``library_symbols.basis``.
CATEGORY_RULES = {
    "layers": "a public callable in the layer namespaces that is, or returns, an instance of "
              "the framework's layer type, takes no sub-layers and is not a loss or metric",
    "combinators": "a layer (as above) that takes sub-layers as arguments and composes them: a "
                   "parameter annotated with the layer type, or named layer(s), sublayers, "
                   "module(s), or ending in _layer(s)/_module(s)",
    "losses_metrics": "a layer that maps (prediction, target) to a scalar: of the framework's "
                      "loss type where it has one, a call taking a target/label, or a docstring "
                      "opening on a loss, criterion, cross-entropy, accuracy or F-score",
    "optimizers": "a public callable in the optimizer namespaces that is, or returns, an "
                  "instance of the framework's optimizer type (the type itself excluded)",
    "lr_schedules": "a public callable in the schedule namespaces that is, or returns, the "
                    "framework's schedule type; with no such type, a function returning a "
                    "function of the step (called without arguments, or so documented)",
    "data": "a public class or function defined in the framework's data namespaces",
    "models": "a public callable in the model namespaces that is, or returns, a layer "
              "(a pre-built architecture)",
    "export": "a public function in the namespaces that target another runtime (configured) "
              "taking a model and a destination file: it writes the model to a file format "
              "another runtime loads",
    "distributed": "a public callable in the distributed namespaces that runs a computation "
                   "across devices or processes: a parameter naming devices, ranks, a process "
                   "group or a mesh axis, or a docstring opening on it",
}
#: Bumped when the rule code changes, so the spec hash changes with it.
RULES_VERSION = 2

#: Distributed training strategies, in report order.
STRATEGIES = ("data_parallel", "fully_sharded", "tensor_parallel", "pipeline_parallel",
              "multi_host_launch")
#: A strategy symbol: a dotted name, optionally with a parameter it must take, e.g.
#: ``trax.supervised.training.Loop(n_devices)``.
STRATEGY_SYMBOL = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?:\((\w+)\))?")


# -- value types: validators raise ValueError with the message the user sees ----------------

def _configured(name: str, info: ValidationInfo) -> str:
    """A framework key of ``[frameworks]`` (the validation context carries them)."""
    if name not in (info.context or {}).get("frameworks", ()):
        raise ValueError(f"{name!r} is not a configured framework")
    return name


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"expected a number > 0, got {value!r}")
    return float(value)


def _metric(name: str) -> str:
    if name not in COMPOSITE_METRICS:
        raise ValueError(f"unknown metric; one of {', '.join(COMPOSITE_METRICS)}")
    return name


def _weight(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return float(value)


def _some_weight(weights: dict[str, float]) -> dict[str, float]:
    if not any(weights.values()):
        raise ValueError("at least one weight must be > 0")
    return weights


def _strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy; one of {', '.join(STRATEGIES)}, or notes")
    return name


def _noted_strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise ValueError(f"expected a strategy ({', '.join(STRATEGIES)}) and a string")
    return name


def _symbols(names: tuple[str, ...]) -> tuple[str, ...]:
    bad = [n for n in names if not STRATEGY_SYMBOL.fullmatch(n)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a dotted name or Name(parameter)")
    return names


FrameworkKey = Annotated[str, AfterValidator(_configured)]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
PositiveNumber = Annotated[float, BeforeValidator(_positive_number)]


class _Root(RootModel):
    """A table whose keys are data (framework names, strategies), validated by their type."""

    model_config = ConfigDict(strict=True, frozen=True)


# -- [analyzers.ergonomics] --------------------------------------------------------------------

#: Defaults of the per-file limits: two workers at 2 GiB each fit a 2-core, 24 GiB machine
#: with room to spare; a kernel file takes about a second, so 60 s stops only runaways.
DEFAULT_FILE_SECONDS = 60.0
DEFAULT_FILE_MEMORY_MB = 2048


@dataclass(frozen=True)
class ErgonomicsSettings:
    """``[analyzers.ergonomics]``: what counts as ceremony, the composite's weights, limits."""

    kernels: Path
    workers: int = 2
    max_file_bytes: int = 2_000_000
    ceremony: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    imports: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Wall-clock seconds one file's measurement may take (its worker is then killed).
    max_file_seconds: float = DEFAULT_FILE_SECONDS
    #: Megabytes of address space one file's measurement may add to an idle worker's.
    max_file_memory_mb: int = DEFAULT_FILE_MEMORY_MB

    def fingerprint(self) -> str:
        """A hash of everything that changes a file's metrics (part of the cache key).

        The time and memory limits are left out: they never change a measured file's rows,
        only whether it is measured at all, and a failure due to a limit is not cached.
        """
        data = {"ceremony": self.ceremony, "imports": self.imports,
                "max_file_bytes": self.max_file_bytes}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class ErgonomicsTable(ConfigModel):
    """``[analyzers.ergonomics]`` as written (every key optional)."""

    kernels: str = "kernels"
    workers: PositiveInt = 2
    max_file_bytes: PositiveInt = 2_000_000
    #: Seconds and megabytes one file may take in its worker before it is stopped.
    max_file_seconds: PositiveNumber = DEFAULT_FILE_SECONDS
    max_file_memory_mb: PositiveInt = DEFAULT_FILE_MEMORY_MB
    #: Framework → calls counted as training-loop ceremony (matched by their last name).
    ceremony: dict[FrameworkKey, Names] = {}
    #: Metric → weight in the composite; default: DEFAULT_WEIGHTS.
    weights: Annotated[dict[Annotated[str, AfterValidator(_metric)],
                            Annotated[float, BeforeValidator(_weight)]],
                       AfterValidator(_some_weight)] | None = None


def ergonomics_settings(config: SurveyConfig) -> ErgonomicsSettings:
    """Validate ``[analyzers.ergonomics]`` (every key optional)."""
    table = validate(ErgonomicsTable, config.analyzers.get("ergonomics", {}), config.path,
                     "analyzers.ergonomics", context=_context(config))
    imports = {key: fw.imports or (key,) for key, fw in config.frameworks.items()}
    path = Path(table.kernels).expanduser()
    return ErgonomicsSettings(
        kernels=path if path.is_absolute() else config.path.parent / path,
        workers=table.workers, max_file_bytes=table.max_file_bytes,
        max_file_seconds=table.max_file_seconds, max_file_memory_mb=table.max_file_memory_mb,
        ceremony=dict(table.ceremony),
        weights=dict(table.weights) if table.weights is not None else dict(DEFAULT_WEIGHTS),
        imports=imports)


# -- [analyzers.library_surface.FW] ---------------------------------------------------------

class SurfaceCategory(ConfigModel):
    """Where one category of a library's public API lives: its namespaces, nothing else.

    What *counts* in the category is a rule written once for every framework
    (:data:`CATEGORY_RULES`, applied by ``introspect_library.py``); the configuration only
    says where to look. No hand-picked symbol lists: a list on one side against a whole
    module on the other decided the old counts (issue #12).
    """

    modules: Names = ()
    note: str = ""


class SurfaceTypes(ConfigModel):
    """The framework's own types for the concepts the rules are written in.

    ``layer``: the layer base type (``torch.nn.Module``, ``trax.layers.base.Layer``);
    ``optimizer``, ``schedule``: the optimizer and learning-rate-schedule base types;
    ``loss``: a loss base type, where the framework has one. A concept the framework has no
    type for is left out, and the rules fall back on what a function returns.
    """

    layer: str = ""
    optimizer: str = ""
    schedule: str = ""
    loss: str = ""


class FrameworkSurface(ConfigModel):
    """``[analyzers.library_surface.FW]``: its ``types`` and, per category, its namespaces."""

    types: SurfaceTypes = SurfaceTypes()
    layers: SurfaceCategory | None = None
    combinators: SurfaceCategory | None = None
    losses_metrics: SurfaceCategory | None = None
    optimizers: SurfaceCategory | None = None
    lr_schedules: SurfaceCategory | None = None
    data: SurfaceCategory | None = None
    models: SurfaceCategory | None = None
    export: SurfaceCategory | None = None
    distributed: SurfaceCategory | None = None


class SurfaceSpec(dict):
    """One framework's surface spec: category → :class:`SurfaceCategory`, plus ``types``.

    A dict, so a framework configured for its distributed strategies only can pass ``{}``.
    """

    def __init__(self, categories: Mapping[str, SurfaceCategory] | None = None,
                 types: SurfaceTypes | None = None) -> None:
        super().__init__(categories or {})
        self.types = types or SurfaceTypes()


def spec_types(spec: Mapping[str, SurfaceCategory]) -> SurfaceTypes:
    """The ``types`` of a spec (none for a plain dict)."""
    return getattr(spec, "types", None) or SurfaceTypes()


class SurfaceSection(_Root):
    """``[analyzers.library_surface]``: framework → its table."""

    root: dict[FrameworkKey, FrameworkSurface] = {}


def surface_settings(config: SurveyConfig) -> dict[str, SurfaceSpec]:
    """Validate ``[analyzers.library_surface.FRAMEWORK]`` tables."""
    section = validate(SurfaceSection, config.analyzers.get("library_surface", {}), config.path,
                       "analyzers.library_surface", context=_context(config)).root
    return {fw: SurfaceSpec({cat: getattr(table, cat) for cat in SURFACE_CATEGORIES
                             if getattr(table, cat) is not None}, table.types)
            for fw, table in section.items()}


def surface_fingerprint(spec: Mapping[str, SurfaceCategory]) -> str:
    """A short hash of one framework's surface spec and of the rules' version."""
    data = {"categories": {cat: c.model_dump() for cat, c in sorted(spec.items())},
            "types": spec_types(spec).model_dump(), "rules": RULES_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# -- [analyzers.distributed_strategies.FW] -----------------------------------------------------

@dataclass(frozen=True)
class StrategySpec:
    """Which public symbols implement each distributed strategy in one framework."""

    symbols: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def probes(self) -> tuple[str, ...]:
        """Every symbol to introspect, once."""
        return tuple(dict.fromkeys(s for names in self.symbols.values() for s in names))


class StrategiesSection(_Root):
    """``[analyzers.distributed_strategies]``: framework → its table (read below)."""

    root: dict[FrameworkKey, dict[str, Any]] = {}


class StrategySymbols(_Root):
    """One framework's strategies (``notes`` aside): strategy → the symbols implementing it."""

    root: dict[Annotated[str, AfterValidator(_strategy)],
               Annotated[Names, AfterValidator(_symbols)]]


class StrategyNotes(_Root):
    """One framework's ``notes``: strategy → what a user does (where nothing is shipped)."""

    root: dict[Annotated[str, AfterValidator(_noted_strategy)], str]


def strategy_settings(config: SurveyConfig) -> dict[str, StrategySpec]:
    """Validate ``[analyzers.distributed_strategies.FRAMEWORK]``: strategy → symbols, and
    ``notes`` (strategy → text), e.g. what a user does where nothing is shipped."""
    prefix = "analyzers.distributed_strategies"
    section = validate(StrategiesSection, config.analyzers.get("distributed_strategies", {}),
                       config.path, prefix, context=_context(config)).root
    result = {}
    for fw, table in section.items():
        # ``notes`` holds text, every other key symbols: two models for one table.
        symbols = validate(StrategySymbols, {k: v for k, v in table.items() if k != "notes"},
                           config.path, f"{prefix}.{fw}").root
        notes = validate(StrategyNotes, table.get("notes", {}), config.path,
                         f"{prefix}.{fw}.notes").root
        result[fw] = StrategySpec(dict(symbols), dict(notes))
    return result


# -- [analyzers] -------------------------------------------------------------------------------

class AnalyzersTables(ConfigModel):
    """``[analyzers]``: which tables exist (each is read by its function above)."""

    ergonomics: dict[str, Any] = {}
    library_surface: dict[str, Any] = {}
    distributed_strategies: dict[str, Any] = {}


def check_settings(config: SurveyConfig) -> None:
    """Validate every ``[analyzers.*]`` table; raises ConfigError naming the dotted key."""
    validate(AnalyzersTables, config.analyzers, config.path, "analyzers")
    ergonomics_settings(config)
    surface_settings(config)
    strategy_settings(config)


def _context(config: SurveyConfig) -> dict[str, Any]:
    return {"frameworks": config.frameworks}
