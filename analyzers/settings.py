"""The analyzers' settings: ``[analyzers.ergonomics]``, ``[analyzers.library_surface.FW]``
and ``[analyzers.distributed_strategies.FW]``.

Validated here, the way a collector validates its options, with errors that name the dotted
key. Everything framework-specific (ceremony calls, where each library keeps its layers,
optimizers, ...) lives in the configuration, so a new framework needs only config and its
paired files.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fwsurvey.config import ConfigError, SurveyConfig

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
_CATEGORY_KEYS = {"modules": list, "symbols": list, "exclude": list, "bases": list,
                  "exclude_bases": list,
                  "kinds": list, "defined_in": list, "exclude_defined_in": list, "note": str}
_KINDS = {"class", "function"}

#: Distributed training strategies, in report order.
STRATEGIES = ("data_parallel", "fully_sharded", "tensor_parallel", "pipeline_parallel",
              "multi_host_launch")
#: A strategy symbol: a dotted name, optionally with a parameter it must take, e.g.
#: ``trax.supervised.training.Loop(n_devices)``.
STRATEGY_SYMBOL = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?:\((\w+)\))?")


@dataclass(frozen=True)
class ErgonomicsSettings:
    """``[analyzers.ergonomics]``: what counts as ceremony, the composite's weights, limits."""

    kernels: Path
    workers: int = 2
    max_file_bytes: int = 2_000_000
    ceremony: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    imports: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of everything that changes a file's metrics (part of the cache key)."""
        data = {"ceremony": self.ceremony, "imports": self.imports,
                "max_file_bytes": self.max_file_bytes}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SurfaceCategory:
    """Where one category of a library's public API lives, and how to recognise it."""

    modules: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    bases: tuple[str, ...] = ()
    exclude_bases: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("class", "function")
    defined_in: tuple[str, ...] = ()
    exclude_defined_in: tuple[str, ...] = ()
    note: str = ""


def _table(config: SurveyConfig, raw: Any, key: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(config.path, key, f"expected a table, got {raw!r}")
    return raw


def _str_list(config: SurveyConfig, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(config.path, key, f"expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _framework_key(config: SurveyConfig, name: str, key: str) -> None:
    if name not in config.frameworks:
        raise ConfigError(config.path, key, f"{name!r} is not a configured framework")


def ergonomics_settings(config: SurveyConfig) -> ErgonomicsSettings:
    """Validate ``[analyzers.ergonomics]`` (every key optional)."""
    prefix = "analyzers.ergonomics"
    raw = _table(config, config.analyzers.get("ergonomics"), prefix)
    known = {"kernels", "workers", "max_file_bytes", "ceremony", "weights"}
    for k in raw:
        if k not in known:
            raise ConfigError(config.path, f"{prefix}.{k}", "unknown key (misspelt?)")
    kernels = raw.get("kernels", "kernels")
    if not isinstance(kernels, str):
        raise ConfigError(config.path, f"{prefix}.kernels", f"expected a string, got {kernels!r}")
    workers = raw.get("workers", 2)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(config.path, f"{prefix}.workers",
                          f"expected a positive integer, got {workers!r}")
    max_bytes = raw.get("max_file_bytes", 2_000_000)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(config.path, f"{prefix}.max_file_bytes",
                          f"expected a positive integer, got {max_bytes!r}")
    ceremony: dict[str, tuple[str, ...]] = {}
    for fw, names in _table(config, raw.get("ceremony"), f"{prefix}.ceremony").items():
        _framework_key(config, fw, f"{prefix}.ceremony.{fw}")
        ceremony[fw] = _str_list(config, names, f"{prefix}.ceremony.{fw}")
    weights = dict(DEFAULT_WEIGHTS)
    if "weights" in raw:
        weights = {}
        for metric, w in _table(config, raw["weights"], f"{prefix}.weights").items():
            key = f"{prefix}.weights.{metric}"
            if metric not in COMPOSITE_METRICS:
                raise ConfigError(config.path, key,
                                  f"unknown metric; one of {', '.join(COMPOSITE_METRICS)}")
            if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
                raise ConfigError(config.path, key, f"expected a number >= 0, got {w!r}")
            weights[metric] = float(w)
        if not any(weights.values()):
            raise ConfigError(config.path, f"{prefix}.weights", "at least one weight must be > 0")
    imports = {key: fw.imports or (key,) for key, fw in config.frameworks.items()}
    path = Path(kernels).expanduser()
    return ErgonomicsSettings(
        kernels=path if path.is_absolute() else config.path.parent / path,
        workers=workers, max_file_bytes=max_bytes,
        ceremony=ceremony, weights=weights, imports=imports)


def surface_settings(config: SurveyConfig) -> dict[str, dict[str, SurfaceCategory]]:
    """Validate ``[analyzers.library_surface.FRAMEWORK.CATEGORY]`` tables."""
    prefix = "analyzers.library_surface"
    raw = _table(config, config.analyzers.get("library_surface"), prefix)
    result: dict[str, dict[str, SurfaceCategory]] = {}
    for fw, categories in raw.items():
        _framework_key(config, fw, f"{prefix}.{fw}")
        result[fw] = {}
        for cat, table in _table(config, categories, f"{prefix}.{fw}").items():
            key = f"{prefix}.{fw}.{cat}"
            if cat not in SURFACE_CATEGORIES:
                raise ConfigError(config.path, key,
                                  f"unknown category; one of {', '.join(SURFACE_CATEGORIES)}")
            table = _table(config, table, key)
            values: dict[str, Any] = {}
            for k, v in table.items():
                if k not in _CATEGORY_KEYS:
                    raise ConfigError(config.path, f"{key}.{k}", "unknown key (misspelt?)")
                if _CATEGORY_KEYS[k] is str:
                    if not isinstance(v, str):
                        raise ConfigError(config.path, f"{key}.{k}",
                                          f"expected a string, got {v!r}")
                    values[k] = v
                else:
                    values[k] = _str_list(config, v, f"{key}.{k}")
            bad = set(values.get("kinds", ())) - _KINDS
            if bad:
                raise ConfigError(config.path, f"{key}.kinds",
                                  f"{sorted(bad)[0]!r} is not class or function")
            result[fw][cat] = SurfaceCategory(**values)
    return result


@dataclass(frozen=True)
class StrategySpec:
    """Which public symbols implement each distributed strategy in one framework."""

    symbols: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def probes(self) -> tuple[str, ...]:
        """Every symbol to introspect, once."""
        return tuple(dict.fromkeys(s for names in self.symbols.values() for s in names))


def strategy_settings(config: SurveyConfig) -> dict[str, StrategySpec]:
    """Validate ``[analyzers.distributed_strategies.FRAMEWORK]``: strategy → symbols, and
    ``notes`` (strategy → text), e.g. what a user does where nothing is shipped."""
    prefix = "analyzers.distributed_strategies"
    raw = _table(config, config.analyzers.get("distributed_strategies"), prefix)
    result = {}
    for fw, table in raw.items():
        _framework_key(config, fw, f"{prefix}.{fw}")
        symbols: dict[str, tuple[str, ...]] = {}
        notes: dict[str, str] = {}
        for key, value in _table(config, table, f"{prefix}.{fw}").items():
            dotted = f"{prefix}.{fw}.{key}"
            if key == "notes":
                for strategy, text in _table(config, value, dotted).items():
                    if strategy not in STRATEGIES or not isinstance(text, str):
                        raise ConfigError(config.path, f"{dotted}.{strategy}",
                                          f"expected a strategy ({', '.join(STRATEGIES)}) "
                                          "and a string")
                    notes[strategy] = text
                continue
            if key not in STRATEGIES:
                raise ConfigError(config.path, dotted,
                                  f"unknown strategy; one of {', '.join(STRATEGIES)}, or notes")
            names = _str_list(config, value, dotted)
            bad = [n for n in names if not STRATEGY_SYMBOL.fullmatch(n)]
            if bad:
                raise ConfigError(config.path, dotted,
                                  f"{bad[0]!r} is not a dotted name or Name(parameter)")
            symbols[key] = names
        result[fw] = StrategySpec(symbols, notes)
    return result


def surface_fingerprint(spec: dict[str, SurfaceCategory]) -> str:
    """A short hash of one framework's surface spec."""
    data = {cat: asdict(c) for cat, c in sorted(spec.items())}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
