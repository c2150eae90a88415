"""One writer at a time: an advisory lock file beside the database."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from fwsurvey.errors import ConfigError


class LockHeld(RuntimeError):
    """Another fwsurvey process is writing to the same database."""


class RunLock:
    """``with RunLock(db_path):`` holds ``<db>.lock`` exclusively, or raises LockHeld.

    The lock is the kernel's (flock): it goes away with the process that held it, so a
    killed run never leaves a stale lock behind.
    """

    def __init__(self, db_path: Path):
        self.path = Path(str(db_path) + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only folder: a usage problem, exit 2, not a crash
            raise ConfigError(self.path.with_suffix(""), None,
                              f"cannot take the lock beside the database ({self.path.name}:"
                              f" {exc.strerror}): a"
                              " command that writes needs a writable folder; read commands"
                              " (status, report, serve) do not") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(
                f"another fwsurvey run (pid {holder}) is writing to {self.path.with_suffix('')}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
