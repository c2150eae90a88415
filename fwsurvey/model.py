"""One way to validate every file a user edits: pydantic models with one-line errors.

``fwsurvey.toml``, ``claims.toml``, the analyzer settings and each task's ``spec.toml`` are
described by :class:`ConfigModel` subclasses (unknown keys are rejected, types are strict).
:func:`validate` turns pydantic's error list into one :class:`~fwsurvey.config.ConfigError`
naming the file and the dotted key, worded the same for every file, e.g.
``fwsurvey.toml: frameworks.trax.pypi: expected a list, got 'trax'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fwsurvey.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

#: pydantic error types, worded the way every fwsurvey file error is worded.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


class ConfigModel(BaseModel):
    """Base of every model of a user-edited file: unknown keys are errors, nothing coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              arbitrary_types_allowed=True)


def dotted(loc: tuple[Any, ...], prefix: str = "") -> str:
    """``("frameworks", "trax", "pypi", 0)`` → ``frameworks.trax.pypi[0]``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def error_message(error: dict[str, Any]) -> str:
    """One pydantic error as fwsurvey words it."""
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (misspelt?)"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {value!r}"
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return f"expected one of {allowed}, got {value!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{error['msg'].lower()}, got {value!r}"
    if kind in ("value_error", "assertion_error"):
        # Raised by a validator: its own words, without pydantic's prefix.
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return message
    return f"{error['msg']}, got {value!r}"


def first_error(exc: ValidationError, path: Path | str, prefix: str = "") -> ConfigError:
    """The first of pydantic's errors, as a ConfigError naming the file and dotted key."""
    errors = exc.errors(include_url=False)
    # A misspelt key shows up twice: as unknown, and as the key it should have been, missing.
    # The unknown one names what the user wrote.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in error["loc"] if p != "__root__")
    # A union's member name ("list[str]", "function-after[...]") is not a key the user wrote.
    loc = tuple(p for p in loc if isinstance(p, int) or not _is_type_tag(p))
    return ConfigError(path, dotted(loc, prefix) or None, error_message(error))


def _is_type_tag(part: str) -> bool:
    return "[" in part or part in ("str", "int", "float", "bool", "list", "dict", "none")


def validate(model: type[M], data: Any, path: Path | str, prefix: str = "",
             context: dict[str, Any] | None = None) -> M:
    """``data`` as ``model``, or a ConfigError naming ``path`` and the dotted key at fault.

    ``prefix`` is where ``data`` sits in its file (``"sources.pypi"``); ``context`` reaches
    validators (``info.context``), e.g. the configured frameworks.
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise first_error(exc, path, prefix) from None
