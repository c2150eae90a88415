"""A git collection killed mid-history (the process, SIGKILL) keeps every committed batch, and
the next run completes from the watermark without reading those commits again.

The old collector wrote a source in one transaction at its end: a kill kept nothing, and a
pytorch-sized history never got past its single 600 s timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fwsurvey.collectors.git_history import FRONTIER
from fwsurvey.store import Store
from tests.collectors.test_git_faults import AUTHORS, linear, new_repo, run, stored
from tests.collectors.test_git_history import config_with_clone

REPO_ROOT = Path(__file__).parent.parent.parent

#: A ``git`` that slows the history listing to one line per 0.1 s (everything else is git).
SLOW_GIT = """#!{python}
import os, subprocess, sys, time
REAL = {real!r}
if "--topo-order" not in sys.argv:
    os.execv(REAL, [REAL, *sys.argv[1:]])
proc = subprocess.Popen([REAL, *sys.argv[1:]], stdout=subprocess.PIPE)
for line in proc.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    time.sleep(0.1)
sys.exit(proc.wait())
"""

COLLECT = """
import sys
from pathlib import Path
from fwsurvey.collectors.git_history import GitHistoryCollector
from fwsurvey.collectors.stage import collect_source
from fwsurvey.config import load_config
from fwsurvey.store import Store
store = Store(Path(sys.argv[2]))
collector = GitHistoryCollector(load_config(Path(sys.argv[1])))
collector.options = collector.options.model_copy(update={"chunk_size": 2})
collect_source(store, store.start_run("collect", ["collect"], {}), collector)
print("finished")
"""


def committed(db: Path, sql: str) -> list[tuple]:
    """Read what another process committed (WAL: readers never block the writer)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def test_a_killed_collection_keeps_its_batches_and_resumes(write_config, tmp_path):
    repo = new_repo(tmp_path / "clone")
    shas = linear(repo, 20)
    config = config_with_clone(write_config, repo)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(SLOW_GIT.format(python=sys.executable,
                                                 real=shutil.which("git")))
    (bin_dir / "git").chmod(0o755)
    db = tmp_path / "s.db"
    Store(db).close()  # migrated before the child starts, so the reads below find tables

    child = subprocess.Popen(
        [sys.executable, "-c", COLLECT, str(config.path), str(db)], cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # Two batches visible: the watermark moved at least twice.
        if len(committed(db, "SELECT sha FROM git_commits")) >= 4:
            break
        assert child.poll() is None, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    # What was kept: whole batches of 2, the oldest commits, each row complete.
    store = Store(db)
    rows = stored(store)
    kept = len(rows)
    assert 4 <= kept < 20 and kept % 2 == 0
    assert set(rows) == set(shas[:kept])
    for i, sha in enumerate(shas[:kept]):
        assert (rows[sha]["author_email"], rows[sha]["files_changed"], rows[sha]["insertions"],
                rows[sha]["stats_status"], rows[sha]["first_run_id"]) == (
            AUTHORS[i % 3].split("<")[1].rstrip(">"), 2, 2, "ok", 1)
    assert store.source_state("git")[("trax", FRONTIER)] == shas[kept - 1]
    assert store.query("SELECT count(*) AS n FROM git_repos") == [{"n": 0}]
    assert store.query("SELECT count(*) AS n FROM run_sources") == [{"n": 0}]  # never finished
    assert store.mark_interrupted_runs() == [1]

    # The next run completes from the watermark: the kept commits are not read again.
    second, outcome = run(store, config)
    assert outcome.status == "ok"
    rows = stored(store)
    assert set(rows) == set(shas)
    assert [rows[s]["run_id"] for s in shas] == [1] * kept + [second] * (20 - kept)
    assert store.query("SELECT commit_count, new_commits FROM git_repos") == [
        {"commit_count": 20, "new_commits": 20 - kept}]
    assert store.source_state("git")[("trax", FRONTIER)] == shas[-1]
