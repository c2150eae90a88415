"""Secret values and their redaction from every text fwsurvey stores or prints.

A service may echo a credential back (a GitHub 403 whose body quotes the Authorization
header), and that text then travels into an outcome's reason, an item error, the report, the
published database and the log. Rather than trust every message's origin, the places where
text leaves the process scrub it: the store (every string it writes), the CLI's log handler
and its error line.

The secrets are the values of the environment variables in :data:`SECRET_ENV_VARS` plus the
ones a collector names (:func:`register_env`, e.g. ``[sources.github] token_env``), read when
a text is redacted, so a value set after start-up is covered too. Every non-empty value is
redacted, however short: a short token mangles some unrelated text into markers, which is
visible and harmless, while a leaked one is neither. Surrounding whitespace is ignored (a
value read from a file often ends with a newline); a value that is only whitespace is no
secret.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

#: Environment variables always treated as secrets.
SECRET_ENV_VARS: tuple[str, ...] = ("GITHUB_TOKEN",)

_registered: set[str] = set(SECRET_ENV_VARS)


def register_env(name: str) -> None:
    """Treat the value of environment variable ``name`` as a secret from now on."""
    if name:
        _registered.add(name)


def secret_values() -> dict[str, str]:
    """The current non-empty secret values, by the environment variable holding them."""
    values = {}
    for name in sorted(_registered):
        value = (os.environ.get(name) or "").strip()
        if value:
            values[name] = value
    return values


def marker(name: str) -> str:
    """What a secret's value is replaced with: ``[REDACTED GITHUB_TOKEN]``.

    Upper case on purpose: rich's markup takes ``[lower case]`` for a style tag and would
    swallow the marker where a message is printed as markup (a table cell).
    """
    return f"[REDACTED {name}]"


def redactor() -> Callable[[str], str]:
    """A function that redacts the secrets set now; cheaper than :func:`redact` in a loop."""
    # Longest first, so a secret that contains another is replaced whole.
    pairs = sorted(((value, marker(name)) for name, value in secret_values().items()),
                   key=lambda pair: -len(pair[0]))
    if not pairs:
        return _unchanged

    def scrub(text: str) -> str:
        for value, replacement in pairs:
            if value in text:
                text = text.replace(value, replacement)
        return text

    return scrub


def redact(text: str) -> str:
    """``text`` with every secret value replaced by its marker."""
    return redactor()(text)


def _unchanged(text: str) -> str:
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts secrets from a record's message and traceback.

    The record is rewritten in place (message formatted, arguments dropped), so any handler
    that sees it after this one sees the redacted text too. A traceback that carries a secret
    is turned into redacted text: the handler then prints it plainly rather than rendering the
    exception itself, which would show the secret again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        scrub = redactor()
        if scrub is _unchanged:
            return True
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            trace = logging.Formatter().formatException(record.exc_info)
            clean_trace = scrub(trace)
            if clean_trace != trace:
                record.msg, record.args = f"{record.msg}\n{clean_trace}", None
                record.exc_info, record.exc_text = None, None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
