"""Benchmark the git collector on a generated 100,000-commit history (issue #15).

Not a test: it takes minutes. It builds, in a temporary directory (never in the repo), a
repository with ``git fast-import``: ``--commits`` commits on ``main``, each changing
``--files-per-commit`` files of a pool, by several authors including a bot (author and
committer), with a merge of a side branch every ``--merge-every`` commits. Then, each in a
fresh process so that peak memory is that phase's own, it runs the real collect path
(``collect_source`` with the ``git`` source) into a temporary SQLite store:

1. the first import (the whole history, in batches of ``chunk_size``);
2. a re-run with no change (must not re-read the history).

For each it reports wall time, the rows in the store and the peak resident memory of the
Python process and of its children (``resource.getrusage``; see :class:`GitPeak` for why
git's own peak is sampled from ``/proc`` as well).

    .venv/bin/python scripts/bench_git.py [--commits 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HUMANS = [("Alice Smith", "alice@example.com"), ("Bob Jones", "bob@corp.example"),
          ("Carol White", "carol@univ.example"), ("Dan Brown", "dan@example.com"),
          ("Erin Green", "erin@corp.example")]
BOT = ("pytorchmergebot", "pytorchmergebot@users.noreply.github.com")
IMPORTER = ("facebook-github-bot", "facebook-github-bot@users.noreply.github.com")
START = 1_451_606_400  # 2016-01-01T00:00:00Z


def fast_import_stream(out, commits: int, files_per_commit: int, merge_every: int,
                       pool: int = 3000) -> int:
    """Write a fast-import stream of ``commits`` commits; return how many were merges."""
    def data(text: str) -> None:
        raw = text.encode()
        out.write(b"data %d\n" % len(raw) + raw + b"\n")

    def who(person: tuple[str, str], when: int) -> bytes:
        return f"{person[0]} <{person[1]}> {when} +0000".encode()

    mark, main_mark, merges, made = 0, 0, 0, 0
    while made < commits:
        when = START + made * 1800
        if merge_every and made and made % merge_every == 0 and made + 2 <= commits:
            # A side commit off main, then a merge of it into main (two commits).
            mark += 1
            out.write(b"commit refs/heads/side\nmark :%d\n" % mark)
            out.write(b"author " + who(HUMANS[made % 5], when) + b"\n")
            out.write(b"committer " + who(HUMANS[made % 5], when) + b"\n")
            data(f"side work {made}\n")
            out.write(b"from :%d\n" % main_mark)
            out.write(f"M 100644 inline side/s{made % 50}.txt\n".encode())
            data(f"side {made}\n")
            side = mark
            mark += 1
            out.write(b"commit refs/heads/main\nmark :%d\n" % mark)
            out.write(b"author " + who(BOT, when + 60) + b"\n")
            out.write(b"committer " + who(BOT, when + 60) + b"\n")
            data(f"Merge side {made}\n")
            out.write(b"from :%d\nmerge :%d\n" % (main_mark, side))
            main_mark = mark
            made += 2
            merges += 1
            continue
        mark += 1
        author = IMPORTER if made % 8 == 7 else HUMANS[made % 5]
        committer = BOT if made % 3 == 0 else author
        out.write(b"commit refs/heads/main\nmark :%d\n" % mark)
        out.write(b"author " + who(author, when) + b"\n")
        out.write(b"committer " + who(committer, when) + b"\n")
        data(f"change {made}\n")
        if main_mark:
            out.write(b"from :%d\n" % main_mark)
        for k in range(files_per_commit):
            n = (made * 7 + k * 131) % pool
            path = f"src/d{n % 40}/f{n}.py"
            out.write(f"M 100644 inline {path}\n".encode())
            data(f"# file {n}\nvalue = {made}\nother = {k}\n")
        main_mark = mark
        made += 1
    out.write(b"done\n")
    return merges


def build(repo: Path, commits: int, files_per_commit: int, merge_every: int) -> dict:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    started = time.perf_counter()
    proc = subprocess.Popen(["git", "-C", str(repo), "fast-import", "--quiet", "--done"],
                            stdin=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    merges = fast_import_stream(proc.stdin, commits, files_per_commit, merge_every)
    proc.stdin.close()
    assert proc.wait() == 0
    count = int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "main"],
                               capture_output=True, text=True, check=True, env=env).stdout)
    size = sum(p.stat().st_size for p in (repo / ".git").rglob("*") if p.is_file())
    return {"build_s": round(time.perf_counter() - started, 1), "commits": count,
            "merges": merges, "repo_mb": round(size / 2**20, 1)}


def write_config(tmp: Path, clone: Path) -> Path:
    text = (REPO / "fwsurvey.toml").read_text()
    text = text.replace('datasette = "datasette.yml"', f'datasette = "{REPO / "datasette.yml"}"')
    text = text.replace('claims = "claims.toml"', f'claims = "{REPO / "claims.toml"}"')
    text = text.replace('github = "pytorch/pytorch"\n',
                        f'github = "pytorch/pytorch"\ngit_clone = "{clone}"\n', 1)
    path = tmp / "fwsurvey.toml"
    path.write_text(text)
    return path


class GitPeak:
    """The largest ``VmHWM`` of this process's git children, sampled every 50 ms.

    ``RUSAGE_CHILDREN``'s ``ru_maxrss`` cannot tell git's own peak: Linux keeps a process's
    maximum across ``exec``, so every child reports at least the Python parent's size at
    fork. ``VmHWM`` belongs to the memory map that ``exec`` replaces: it is git's own.
    """

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GitPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(0.05):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if fields.get("PPid", "").strip() == me and fields.get("Name", "").strip() == "git":
                    hwm = int(fields.get("VmHWM", "0 kB").split()[0])
                    self.peak_kb = max(self.peak_kb, hwm)


def phase(config: Path, db: Path) -> dict:
    """One collection through the real path; runs in its own process (see main)."""
    from fwsurvey.collectors.git_history import GitHistoryCollector
    from fwsurvey.collectors.stage import collect_source
    from fwsurvey.config import load_config
    from fwsurvey.store import Store

    store = Store(db)
    collector = GitHistoryCollector(load_config(config))
    started = time.perf_counter()
    with GitPeak() as git_peak:
        outcome = collect_source(store, store.start_run("collect", ["git"], {}), collector)
    wall = time.perf_counter() - started
    counts = store.query(
        "SELECT count(*) AS commits, sum(reachable) AS reachable, sum(parents > 1) AS merges,"
        " sum(stats_status = 'ok') AS with_stats FROM git_commits")[0]
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"status": outcome.status, "reason": outcome.reason, "wall_s": round(wall, 2),
            "cpu_self_s": round(me.ru_utime + me.ru_stime, 1),
            "cpu_git_s": round(kids.ru_utime + kids.ru_stime, 1),
            "peak_rss_python_mb": round(me.ru_maxrss / 1024, 1),
            "peak_rss_children_mb": round(kids.ru_maxrss / 1024, 1),
            "peak_rss_git_own_mb": round(git_peak.peak_kb / 1024, 1),
            "new_commits": store.query("SELECT new_commits FROM git_repos_latest")[0][
                "new_commits"], **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--files-per-commit", type=int, default=3)
    parser.add_argument("--merge-every", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temp dir)")
    parser.add_argument("--phase", nargs=2, metavar=("CONFIG", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(Path(args.phase[0]), Path(args.phase[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-git-") as temp:
        tmp = args.keep or Path(temp)
        tmp.mkdir(parents=True, exist_ok=True)
        clone = tmp / "repo"
        print("build:", json.dumps(build(clone, args.commits, args.files_per_commit,
                                         args.merge_every)), flush=True)
        config, db = write_config(tmp, clone), tmp / "bench.db"
        for name in ("first import", "no-change re-run"):
            done = subprocess.run([sys.executable, __file__, "--phase", str(config), str(db)],
                                  capture_output=True, text=True, cwd=REPO, check=False)
            if done.returncode != 0:
                sys.exit(f"{name} failed:\n{done.stderr}")
            print(f"{name}:", done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
