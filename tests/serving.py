"""Real servers for tests: a collected database and a Datasette process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from fwsurvey.collectors.stage import CollectStage
from fwsurvey.pipeline import load_survey, run_survey
from tests.conftest import FIXED_NOW, recorded_index


def collected_db(config_path: Path, db: Path, stages: tuple[str, ...] = ("collect",)) -> Path:
    """A database collected from the recorded PyPI responses (then ``stages`` after it)."""
    config = load_survey(config_path)
    chosen = [CollectStage(make_collector=lambda cls, cfg: cls(cfg, now=lambda: FIXED_NOW))
              if name == "collect" else name for name in stages]
    with recorded_index():
        result = run_survey(config, db, stages=chosen)
    assert result.status == "ok", [(o.source, o.status, o.reason) for o in result.outcomes]
    return db


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(command: list[str], port: int, log: Path, *, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[str]:
    """Run ``command`` (a server on 127.0.0.1:``port``) until the block ends; yield its URL.

    The server runs in a session of its own and the whole group is killed on the way out,
    whatever happens in the block. Its output goes to ``log`` (quoted when it fails to start).
    """
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(f"{base}/-/versions.json", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, f"server exited: {log.read_text()}"
                assert time.monotonic() < deadline, f"no server in {timeout} s: {log.read_text()}"
                time.sleep(0.2)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
