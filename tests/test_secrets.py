"""Secrets: what is redacted, from the store's writes and the CLI's log lines."""

from __future__ import annotations

import io
import logging

import pytest

from fwsurvey import cli
from fwsurvey.secrets import RedactingFilter, marker, redact, register_env
from fwsurvey.sources import Record
from fwsurvey.store import ItemError, SourceOutcome, Store, utcnow

TOKEN = "ghp_SECRETsecret0123456789abcdefABCDEF99"


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return TOKEN


def test_the_token_is_replaced_by_a_marker(token):
    assert redact(f"HTTP 403 Bad credentials: Bearer {token}.") == (
        "HTTP 403 Bad credentials: Bearer [REDACTED GITHUB_TOKEN].")
    assert redact("nothing secret here") == "nothing secret here"


def test_a_registered_variable_is_a_secret_too(monkeypatch):
    monkeypatch.setenv("FWSURVEY_TEST_OTHER_TOKEN", "other-secret-value")
    assert redact("x other-secret-value y") == "x other-secret-value y"
    register_env("FWSURVEY_TEST_OTHER_TOKEN")
    assert redact("x other-secret-value y") == f"x {marker('FWSURVEY_TEST_OTHER_TOKEN')} y"


@pytest.mark.parametrize("value, text, expected", [
    ("", "an empty value is no secret", "an empty value is no secret"),
    ("   \n", "nor is whitespace   \n", "nor is whitespace   \n"),
    # Short values are redacted anyway: a mangled text is visible, a leaked token is not.
    ("abc", "abcdef", "[REDACTED GITHUB_TOKEN]def"),
    # Surrounding whitespace (a value read from a file) is not part of the secret.
    ("tok3n-value\n", "Bearer tok3n-value", "Bearer [REDACTED GITHUB_TOKEN]"),
])
def test_empty_short_and_padded_values(monkeypatch, value, text, expected):
    monkeypatch.setenv("GITHUB_TOKEN", value)
    assert redact(text) == expected


def test_log_handler_redacts_messages_arguments_and_tracebacks(token):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("fwsurvey.test_secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("answer: %s", {"message": f"bad token {token}"})
        try:
            raise RuntimeError(f"GitHub said {token}")
        except RuntimeError:
            logger.debug("source failed", exc_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert token not in text
    assert text.count("[REDACTED GITHUB_TOKEN]") == 2
    assert "RuntimeError: GitHub said [REDACTED GITHUB_TOKEN]" in text  # the traceback stays


def test_store_redacts_rows_reasons_and_item_errors(token, tmp_path):
    path = tmp_path / "s.db"
    store = Store(path)
    run = store.start_run("collect", ["collect"], {})
    now = utcnow()
    outcome = SourceOutcome("collect", "github", "unreachable", now, now,
                            reason=f"HTTP 403 {token}",
                            errors=[ItemError("google/trax", "unreachable", f"echo {token}")])
    record = Record("github_contributors", {"repo": "google/trax", "framework": "trax",
                                            "login": token, "contributions": 1,
                                            "is_bot": False, "fetched_at": now})
    store.write_source(run, outcome, [record])
    # In place: what the CLI prints afterwards is what was stored.
    assert outcome.reason == "HTTP 403 [REDACTED GITHUB_TOKEN]"
    assert outcome.errors[0].message == "echo [REDACTED GITHUB_TOKEN]"
    assert store.query("SELECT login FROM github_contributors") == [
        {"login": "[REDACTED GITHUB_TOKEN]"}]
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    store.close()
    stored += path.read_bytes()
    assert token.encode() not in stored
    assert b"[REDACTED GITHUB_TOKEN]" in stored


def test_cli_error_line_and_verbose_traceback_are_redacted(token, write_config, monkeypatch,
                                                           capsys):
    def boom(*args, **kwargs):
        raise RuntimeError(f"the service answered {token}")

    monkeypatch.setattr(cli, "run_survey", boom)
    config = str(write_config())
    for verbose in ((), ("--verbose",)):
        with pytest.raises(SystemExit) as info:
            cli.main(["collect", "--config", config, *verbose])
        assert info.value.code == cli.EXIT_FAILED
        captured = capsys.readouterr()
        assert token not in captured.err + captured.out
        assert "the service answered [REDACTED GITHUB_TOKEN]" in captured.err
