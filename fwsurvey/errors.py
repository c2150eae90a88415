"""Errors shared by every layer: a file a user edited that cannot be used."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A file a user edits that cannot be used, with the file and the dotted key at fault.

    Shown as one line: ``fwsurvey.toml: frameworks.trax.pypi: expected a list, got 'trax'``.
    """

    def __init__(self, path: Path | str, key: str | None, message: str, *,
                 shown: str | None = None):
        self.path = Path(path)
        self.key = key
        self.message = message
        # ``shown``: how the message names the file where its name alone is ambiguous
        # (every task's ``spec.toml``): ``kernels/mlp_digits/spec.toml``.
        where = f"{shown or self.path.name}: {key}: " if key else f"{shown or self.path}: "
        super().__init__(where + message)
