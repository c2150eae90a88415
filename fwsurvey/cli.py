"""The ``fwsurvey`` command line.

Exit codes, for schedulers:

* 0: done, every source ok
* 1: failed (a source or stage raised an unexpected error, or fwsurvey itself did)
* 2: bad usage or configuration
* 3: done, degraded: some source was unreachable or partly collected (see ``fwsurvey status``)
* 75: another fwsurvey run holds the database's lock; try again later
"""

from __future__ import annotations

import functools
import logging
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fwsurvey import __version__
from fwsurvey.analyzers.stage import AnalyzeStage
from fwsurvey.claims import (
    ClaimsStage,
    check_sql,
    claim_pair,
    default_registry_path,
    direction_problems,
    load_registry,
    metrics_for,
    sql_listing,
)
from fwsurvey.collectors import SOURCES
from fwsurvey.collectors.stage import CollectStage
from fwsurvey.config import DEFAULT_CONFIG_NAME, ConfigError, SurveyConfig
from fwsurvey.executor import EXECUTORS, Executor, ExecutorUnavailable, make_executor
from fwsurvey.importer import import_file
from fwsurvey.kernels.stage import (
    TrainOptions,
    TrainStage,
    for_executor,
    kernels_table,
    options_from_config,
    plan,
    scaling_counts,
)
from fwsurvey.lock import LockHeld, RunLock
from fwsurvey.pipeline import STAGES, RunResult, load_survey, run_survey
from fwsurvey.publish import (
    PublishError,
    datasette_command,
    load_datasette_yml,
    publish_folder,
    run_server,
    serving_snapshot,
)
from fwsurvey.reports.render import render_report
from fwsurvey.secrets import RedactingFilter, redact
from fwsurvey.stage import Stage
from fwsurvey.store import SourceOutcome, Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEGRADED, EXIT_LOCKED = 0, 1, 2, 3, 75
STATUS_EXIT = {"ok": EXIT_OK, "degraded": EXIT_DEGRADED, "failed": EXIT_FAILED}

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class Failure(click.ClickException):
    """An error reported as one line, with the exit code a scheduler can act on."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # noqa: ARG002 - click's signature
        _error_line(self.message)


def _error_line(message: str) -> None:
    """The one ``error:`` line, with any secret a service echoed redacted."""
    err.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)


def _common(fn: Callable) -> Callable:
    """``--config``, ``--db`` and ``--verbose`` on every command."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                  envvar="FWSURVEY_CONFIG", default=DEFAULT_CONFIG_NAME, show_default=True,
                  help="Survey configuration (TOML). Env: FWSURVEY_CONFIG.")
    @click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                  envvar="FWSURVEY_DB", default=None,
                  help="SQLite database [default: survey.database from the config]. Another"
                       " database takes what derives from it along: the report goes to"
                       " report/ and the GitHub HTTP cache to http-cache/ beside it. "
                       "Env: FWSURVEY_DB.")
    @click.option("-v", "--verbose", is_flag=True, help="Log details and full tracebacks.")
    @functools.wraps(fn)
    def wrapper(config_path: Path, db_path: Path | None, verbose: bool, **kwargs: Any):
        _setup_logging(verbose)
        config = load_survey(config_path)
        if db_path is not None:  # the report folder and the HTTP cache follow the database
            config = config.with_database(db_path)
        return fn(config=config, db_path=config.database, **kwargs)

    return wrapper


def _setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=err, show_time=False, show_path=False, rich_tracebacks=True)
    handler.addFilter(RedactingFilter())  # a service may echo a token into a message
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )
    # Library chatter (urllib3 connection pool, matplotlib fonts) only when asked for.
    for noisy in ("urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


class RichProgress:
    """Shows one progress bar per source while it is collected."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def source_started(self, source: str, total: int) -> None:
        self.tasks[source] = self.progress.add_task(source, total=total, item="")

    def item_done(self, source: str, item: str) -> None:
        if source not in self.tasks:  # a unit that did not say how many items it has
            self.source_started(source, 0)
        self.progress.update(self.tasks[source], advance=1, item=item)
        if not err.is_terminal:  # a log file (cron, CI): one line per item instead of bars
            task = self.progress.tasks[self.tasks[source]]
            err.print(f"{source}: {task.completed:.0f}/{task.total:.0f} {item}")

    def source_finished(self, outcome: SourceOutcome) -> None:
        task = self.tasks.get(outcome.source)
        if task is not None:
            self.progress.update(task, item=outcome.status)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[item]}"), TimeElapsedColumn(), console=err,
                    transient=False, disable=not err.is_terminal)


def _print_outcomes(outcomes: list[SourceOutcome]) -> None:
    table = Table(title="Sources", title_justify="left")
    for col in ("stage", "source", "status", "ok", "failed", "reason"):
        table.add_column(col)
    colours = {"ok": "green", "skipped": "dim", "partial": "yellow",
               "unreachable": "yellow", "error": "red"}
    for o in outcomes:
        c = colours.get(o.status, "white")
        table.add_row(o.stage, o.source, f"[{c}]{o.status}[/]", str(o.items_ok),
                      str(len(o.errors)), escape(o.reason or ""))
    err.print(table)


def _run(config: SurveyConfig, db_path: Path, stages: list[Stage | str],
         command: str) -> RunResult:
    try:
        with _progress() as progress:
            result = run_survey(config, db_path, stages=stages, command=command,
                                progress=RichProgress(progress))
    except LockHeld as exc:
        raise Failure(f"{exc}; try again when it has finished", EXIT_LOCKED) from None
    except ValueError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    _print_outcomes(result.outcomes)
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fwsurvey")
def cli() -> None:
    """Measure the claims of a deep-learning framework comparison."""


@cli.command()
@click.option("--source", "sources", multiple=True,
              help="Collect only this source (repeatable). Default: every source.")
@_common
def collect(config: SurveyConfig, db_path: Path, sources: tuple[str, ...]) -> None:
    """Collect community and release data from every configured source."""
    try:
        stage = CollectStage(sources=list(sources) or None)
    except ValueError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    result = _run(config, db_path, [stage],
                  shlex.join(["collect", *[f"--source={s}" for s in sources]]))
    err.print(f"run {result.run_id}: [bold]{result.status}[/] → {db_path}")
    sys.exit(STATUS_EXIT[result.status])


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Report folder [default: survey.report_dir from the config].")
@click.option("--run", "run_id", type=int, default=None,
              help="Render this run [default: the newest finished run].")
@_common
def report(config: SurveyConfig, db_path: Path, out_dir: Path | None, run_id: int | None):
    """Render the Markdown report (and its charts) from the database."""
    if not db_path.exists():
        raise Failure(f"no database at {db_path}: run `fwsurvey run` first", EXIT_USAGE)
    store = Store(db_path, readonly=True)  # a read-only database reports too
    try:
        path = render_report(store, config, out_dir or config.report_dir, run_id=run_id)
    except LookupError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    finally:
        store.close()
    click.echo(str(path))


@cli.command()
@click.option("--check", is_flag=True,
              help="Only validate the registry (and its SQL against the schema); no database.")
@click.option("--registry", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Claims registry [default: survey.claims, else claims.toml].")
@click.option("--show-sql", "show_sql", metavar="ID", default=None,
              help="Print the SQL that metric ID (or each metric of claim ID) runs, with its"
                   " parameters, to paste into Datasette; judge nothing.")
@_common
def claims(config: SurveyConfig, db_path: Path, check: bool, registry: Path | None,
           show_sql: str | None) -> None:
    """Judge every claim of the registry against the database, and re-render the report.

    Each verdict (supported, contradicted, mixed, insufficient evidence) is stored with the
    evidence rows behind it (tables claims and claim_evidence).
    """
    path = registry or default_registry_path(config)
    try:
        loaded = load_registry(path)
    except ConfigError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    if show_sql is not None:
        try:
            metrics = metrics_for(loaded, show_sql)
        except KeyError:
            raise Failure(f"{path}: no metric or claim {show_sql!r}", EXIT_USAGE) from None
        claim = next((c for c in loaded.claims if c.id == show_sql), None)
        pair = claim_pair(claim, config) if claim is not None else None
        click.echo(sql_listing(metrics, config, _newest_judged_run(db_path), pair))
        return
    problems = check_sql(loaded)
    if problems:
        raise Failure(f"{path}:\n  " + "\n  ".join(problems), EXIT_USAGE)
    if check:
        # A metric counting for a framework in one claim and against it in another is allowed
        # (a user may pit two claims against each other) but worth saying.
        for problem in direction_problems(loaded):
            err.print(f"warning: {path}: {problem}")
        err.print(f"{path}: {len(loaded.claims)} claims, {len(loaded.metrics)} metrics: ok")
        return
    if not db_path.exists():
        raise Failure(f"no database at {db_path}: run `fwsurvey run` first", EXIT_USAGE)
    result = _run(config, db_path, [ClaimsStage(registry=path), "report"], "claims")
    _print_verdicts(db_path, result.run_id)
    err.print(f"run {result.run_id}: [bold]{result.status}[/] → {db_path}")
    if result.report:
        click.echo(str(result.report))
    sys.exit(STATUS_EXIT[result.status])


def _newest_judged_run(db_path: Path) -> int | None:
    """The run whose verdicts the database shows (its survey_frameworks rows exist)."""
    if not db_path.exists():
        return None
    store = Store(db_path, readonly=True)
    try:
        if "claims" not in store.db.table_names():
            return None
        return store.query("SELECT MAX(run_id) AS run_id FROM claims")[0]["run_id"]
    finally:
        store.close()


def _print_verdicts(db_path: Path, run_id: int) -> None:
    store = Store(db_path, readonly=True)
    try:
        rows = store.query("SELECT claim_id, verdict, key_numbers FROM claims WHERE run_id = ?"
                           " ORDER BY section, claim_id", [run_id])
    finally:
        store.close()
    colours = {"supported": "green", "contradicted": "red", "mixed": "yellow"}
    table = Table(title="Verdicts", title_justify="left")
    for col in ("claim", "verdict", "key numbers"):
        table.add_column(col)
    for r in rows:
        c = colours.get(r["verdict"], "dim")
        table.add_row(r["claim_id"], f"[{c}]{r['verdict']}[/]", r["key_numbers"] or "")
    err.print(table)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--executor", "executor_name", type=click.Choice(EXECUTORS), default="local",
              show_default=True,
              help="Where files are measured: local (worker processes here) or ray (batches "
                   "of files as tasks on a Ray cluster, for a large corpus).")
@click.option("--address", default=None, metavar="ADDR",
              help="The Ray cluster (auto, ray://HOST:10001); default: a local Ray.")
@_common
def analyze(config: SurveyConfig, db_path: Path, paths: tuple[Path, ...],
            executor_name: str, address: str | None) -> None:
    """Measure code ergonomics and library surfaces.

    Without PATHS: the library surface of each configured framework and the paired
    implementations under kernels/. With PATHS (files, folders, notebooks): any code,
    scored the same way; it is read, never imported or run.
    """
    try:
        executor = make_executor(executor_name, address)
    except (ValueError, ExecutorUnavailable) as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    remote = executor_name != "local"
    command = shlex.join(["analyze", *map(str, paths),
                          *([f"--executor={executor_name}"] if remote else []),
                          *([f"--address={address}"] if remote and address else [])])
    try:
        result = _run(config, db_path, [AnalyzeStage(paths=list(paths) or None,
                                                     executor=executor)], command)
    finally:
        executor.close()
    err.print(f"run {result.run_id}: [bold]{result.status}[/] → {db_path}")
    sys.exit(STATUS_EXIT[result.status])


@cli.command()
@click.option("--profile", type=click.Choice(["quick", "full"]), default="quick",
              show_default=True,
              help="quick: CPU-sized shapes; full: GPU shapes (GPT-2 small LM, bf16).")
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--framework", "frameworks", multiple=True,
              help="Only this framework (repeatable): pytorch, trax, jax.")
@click.option("--device", default=None, help="cpu or cuda [default: cuda if PyTorch sees one].")
@click.option("--experiment", "experiments", multiple=True,
              type=click.Choice(["train", "dynamic"]),
              help="train: the paired trainings; dynamic: the varying-shape LM runs. "
                   "Default: both, or none when --scaling is given.")
@click.option("--scaling", "scaling", default=None, metavar="N,N,...",
              callback=lambda ctx, param, value: _device_counts(value),
              help="Data-parallel runs on each of these device counts (e.g. 1,2,4), with each "
                   "framework's own engine; 1, the baseline, is always included. On a CPU "
                   "the devices are simulated: correctness, not speed.")
@click.option("--executor", "executor_name", type=click.Choice(EXECUTORS), default=None,
              help="Where the jobs run: local (one after the other, here) or ray (tasks on a "
                   "Ray cluster, each job still a fresh subprocess). Default: [kernels] "
                   "executor, else local.")
@click.option("--address", default=None, metavar="ADDR",
              help="The Ray cluster: auto (the one this machine belongs to) or "
                   "ray://HOST:10001. Default: [kernels] address, else a local Ray for the run.")
@click.option("--jobs-per-node", type=click.IntRange(min=1), default=None,
              help="Jobs at once on one node. Default: [kernels] jobs_per_node, else 1, so "
                   "no timing is taken beside another job.")
@_common
def train(config: SurveyConfig, db_path: Path, profile: str, tasks: tuple[str, ...],
          frameworks: tuple[str, ...], device: str | None,
          experiments: tuple[str, ...], scaling: tuple[int, ...], executor_name: str | None,
          address: str | None, jobs_per_node: int | None) -> None:
    """Run the paired reference trainings side by side and store what they measured."""
    default_experiments = () if scaling else ("train", "dynamic")
    try:
        table = kernels_table(config)
    except ConfigError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    executor_name = executor_name or table.executor
    address = address or table.address or None
    options = TrainOptions(profile, tasks, frameworks, device,
                           experiments or default_experiments, scaling=scaling,
                           executor=executor_name, address=address,
                           jobs_per_node=jobs_per_node or table.jobs_per_node)
    remote = executor_name != "local"
    command = shlex.join(["train", f"--profile={profile}", *[f"--task={t}" for t in tasks],
                          *[f"--framework={f}" for f in frameworks],
                          *([f"--device={device}"] if device else []),
                          *[f"--experiment={e}" for e in experiments],
                          *([f"--scaling={','.join(map(str, scaling))}"] if scaling else []),
                          *([f"--executor={executor_name}"] if remote else []),
                          *([f"--address={address}"] if remote and address else []),
                          *([f"--jobs-per-node={jobs_per_node}"] if jobs_per_node else [])])
    try:
        executor = make_executor(executor_name, address)
    except (ValueError, ExecutorUnavailable) as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    try:
        _train(config, db_path, options, executor, command)
    finally:
        executor.close()


def _train(config: SurveyConfig, db_path: Path, options: TrainOptions, executor: Executor,
           command: str) -> None:
    """``fwsurvey train`` once its executor is ready: plan for its nodes, run, report."""
    profile, scaling, remote = options.profile, options.scaling, executor.name != "local"
    options = for_executor(options, executor)
    try:
        jobs = plan(config, options)
    except ValueError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    if remote:
        err.print(f"executor {executor.name}"
                  f"{' at ' + options.address if options.address else ' (a local cluster)'}"
                  f", at most {options.jobs_per_node} job(s) per node")
    err.print(f"{len(jobs)} jobs ({profile} profile, device {jobs[0].device if jobs else '-'})")
    if scaling and jobs and jobs[0].device == "cpu":
        err.print(f"scaling on N = {', '.join(map(str, scaling))} devices, simulated on one "
                  "CPU: this checks correctness and machinery, not speed")
    result = _run(config, db_path, [TrainStage(options, executor=executor)], command)
    err.print(f"run {result.run_id}: [bold]{result.status}[/] → {db_path}")
    sys.exit(STATUS_EXIT[result.status])


def _device_counts(value: str | None) -> tuple[int, ...]:
    """``--scaling 1,2,4`` as validated device counts."""
    if value is None:
        return ()
    try:
        return scaling_counts([int(part) for part in value.split(",")])
    except ValueError:
        raise click.BadParameter(f"expected positive integers separated by commas, e.g. 1,2,4;"
                                 f" got {value!r}", param_hint="'--scaling'") from None


@cli.command()
@_common
def run(config: SurveyConfig, db_path: Path) -> None:
    """Run every stage: collect all sources, analyze code and libraries, train the paired
    kernels (quick profile), judge the claims, write the report."""
    options = options_from_config(config)  # a bad [kernels] table fails before the run
    if options.enabled:
        try:
            plan(config, options)
        except ValueError as exc:
            raise Failure(f"{config.path.name}: kernels: {exc}", EXIT_USAGE) from None
    stages: list[Stage | str] = [TrainStage(options) if name == TrainStage.name else name
                                 for name in STAGES]
    result = _run(config, db_path, stages, "run")
    err.print(f"run {result.run_id}: [bold]{result.status}[/] → {db_path}")
    if result.report:
        err.print(f"Report: {result.report}")
        err.print(f"Browse: fwsurvey serve --db {shlex.quote(str(db_path))}"
                  "  then open http://127.0.0.1:8001/")
        click.echo(str(result.report))
    sys.exit(STATUS_EXIT[result.status])


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@_common
def serve(config: SurveyConfig, db_path: Path, host: str, port: int) -> None:
    """Browse the database in Datasette, with datasette.yml's metadata: a read-only snapshot
    taken now (restart to see newer runs)."""
    if not db_path.exists():
        raise Failure(f"no database at {db_path}: run `fwsurvey run` first", EXIT_USAGE)
    ds_config = load_datasette_yml(config.datasette)
    try:
        # A private copy: the live file may be written by a run while it is served.
        with serving_snapshot(db_path, ds_config) as snapshot:
            command = datasette_command(snapshot.db, snapshot.metadata, ds_config, host, port,
                                        plugins_dir=snapshot.plugins)
            err.print(f"Serving a snapshot of {db_path} at http://{host}:{port}/ "
                      "(restart to see newer runs; Ctrl-C to stop)")
            code = run_server(command)
    except PublishError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    if code:
        raise Failure(f"Datasette exited with status {code}: its message is above", EXIT_FAILED)


@cli.command("publish")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Replace TARGET if it is a previous publication (nothing else).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder to include [default: survey.report_dir; left out if "
                   "absent].")
@_common
def publish_command(config: SurveyConfig, db_path: Path, target: Path, force: bool,
                    report_dir: Path | None) -> None:
    """Write TARGET, a folder that hosts the survey read-only: a consistent copy of the
    database, Datasette metadata and settings, the report, pinned requirements, serve.sh
    and a Dockerfile."""
    if not db_path.exists():
        raise Failure(f"no database at {db_path}: run `fwsurvey run` first", EXIT_USAGE)
    ds_config = load_datasette_yml(config.datasette)
    try:
        with RunLock(db_path):  # publish a finished run, never one half-written
            path = publish_folder(db_path, target, ds_config,
                                  report_dir=report_dir or config.report_dir, force=force,
                                  config_path=config.path)
    except LockHeld as exc:
        raise Failure(f"{exc}; publish when it has finished", EXIT_LOCKED) from None
    except PublishError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    err.print(f"Published {db_path} → {path}")
    err.print(f"Serve it: cd {shlex.quote(str(path))} && sh serve.sh")
    click.echo(str(path))


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_common
def import_command(config: SurveyConfig, db_path: Path, path: Path) -> None:
    """Load PATH, rows measured elsewhere (the GPU check's records.json), as a new run."""
    try:
        done = import_file(db_path, path)
    except LockHeld as exc:
        raise Failure(f"{exc}; try again when it has finished", EXIT_LOCKED) from None
    counts = ", ".join(f"{table} {n}" for table, n in sorted(done.rows.items()))
    err.print(f"run {done.run_id}: imported {counts} from {done.source} → {db_path}")


@cli.command()
@_common
def status(config: SurveyConfig, db_path: Path) -> None:
    """Configured sources, whether each is reachable now (and why not), and the last run."""
    table = Table(title=f"Sources ({config.path.name})", title_justify="left")
    for col in ("source", "enabled", "reachable", "detail", "last run"):
        table.add_column(col)
    last: dict[str, dict] = {}
    if db_path.exists():
        store = Store(db_path, readonly=True)  # status writes nothing, even beside it
        try:
            last = {r["source"]: r for r in store.query(
                "SELECT * FROM source_status_latest WHERE stage = 'collect'")}
            latest = store.latest_run(finished_only=False)
        finally:
            store.close()
    else:
        latest = None
    unreachable = False
    for name, cls in SOURCES.items():
        settings = config.source(name)
        prev = last.get(name)
        prev_text = f"{prev['status']} (run {prev['run_id']})" if prev else "never"
        if not settings.enabled:
            table.add_row(name, "no", "—", "disabled in the configuration", prev_text)
            continue
        collector = cls(config)
        try:
            probe = collector.check()
        finally:
            collector.close()
        unreachable |= not probe.reachable
        # The detail may quote a service's answer, which may echo the token back.
        table.add_row(name, "yes", "[green]yes[/]" if probe.reachable else "[red]no[/]",
                      escape(redact(probe.detail)), prev_text)
    out.print(table)
    if latest:
        out.print(f"Database {db_path}: last run {latest['id']} ({latest['status']}), "
                  f"started {latest['started_at']}")
    else:
        out.print(f"Database {db_path}: no run yet")
    sys.exit(EXIT_DEGRADED if unreachable else EXIT_OK)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and turns errors into one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="fwsurvey", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:  # a file or the database (StoreError) that cannot be used
        _error_line(str(exc))
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        ctx_verbose = "-v" in sys.argv or "--verbose" in sys.argv or (
            argv is not None and ("-v" in argv or "--verbose" in argv))
        if ctx_verbose:
            trace = "".join(traceback.format_exception(exc))
            if redact(trace) == trace:
                err.print_exception()
            else:  # rich would render the exception itself, secret included
                err.print(redact(trace), markup=False, highlight=False)
        _error_line(f"{type(exc).__name__}: {exc}"
                    + ("" if ctx_verbose else "  (--verbose for the traceback)"))
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)
