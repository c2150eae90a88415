"""Where a batch of independent jobs runs: in this process one after the other
(:class:`LocalExecutor`, the default) or as tasks of a Ray cluster (:class:`RayExecutor`).

A job is a picklable, importable callable with its arguments, the resources it declares and
a label. An executor yields one :class:`Completion` per job as jobs finish: the callable's
return value, or a failure with its reason. A job whose worker is lost (killed, out of
memory, its node gone) is that job's failure; the other jobs go on. Nothing here writes the
store: the caller (the driver) does, so SQLite keeps one writer whatever runs the jobs.

Infrastructure: this module imports nothing from the domain packages, and Ray only when a
:class:`RayExecutor` is used (the ``ray`` install extra).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

#: The executors ``--executor`` and the configuration may name.
EXECUTORS = ("local", "ray")

#: Failure kinds of a :class:`Completion`: the job raised (``error``), its worker or node
#: was lost (``crashed``), or no node of the cluster can ever hold it (``unschedulable``).
ERROR, CRASHED, UNSCHEDULABLE = "error", "crashed", "unschedulable"


class ExecutorUnavailable(Exception):
    """The executor cannot run anything (Ray not installed, no cluster at the address)."""


@dataclass(frozen=True)
class Resources:
    """What one job needs while it runs.

    ``per_node``: at most this many such jobs at once on one node; the job then asks for
    that share of the CPUs of the cluster's largest node with the GPUs it needs (1: a whole
    node, so a timing is never measured beside another job; on a cluster of unequal nodes
    such jobs go to the largest). The local executor runs one job at a time anyway.
    """

    cpus: float = 1.0
    gpus: int = 0
    memory_mb: int | None = None
    per_node: int | None = None


@dataclass(frozen=True)
class ExecJob:
    """One job: ``fn(*args)`` with its resources; ``label`` names it in messages."""

    label: str
    fn: Callable[..., Any]
    args: tuple = ()
    resources: Resources = field(default_factory=Resources)


@dataclass
class Completion:
    """How one job ended, and where it ran.

    ``failure`` is None when ``result`` holds the callable's return value; otherwise its
    kind is ``failure`` (:data:`ERROR`, :data:`CRASHED`, :data:`UNSCHEDULABLE`) and
    ``reason`` says what happened in words.
    """

    index: int
    job: ExecJob
    executor: str
    result: Any = None
    failure: str | None = None
    reason: str | None = None
    #: Where it ran: ``hostname`` locally, ``hostname (ray node id)`` on Ray; None if unknown.
    node: str | None = None
    #: The accelerators the executor gave it (Ray's GPU ids), empty for none or unknown.
    devices: tuple[str, ...] = ()
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None


class Executor(Protocol):
    """Runs a batch of independent jobs and yields each one's :class:`Completion`."""

    name: str

    def run(self, jobs: Sequence[ExecJob]) -> Iterator[Completion]:
        """One completion per job, in the order they finish."""
        ...

    def max_gpus_per_node(self) -> int | None:
        """The most GPUs a job can be given on one node; None where not known (local)."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a Ray connection it opened)."""
        ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LocalExecutor:
    """Today's behaviour: each job called in this process, one after the other, in order.

    A job that must be isolated starts its own subprocess (a kernel job does); an exception
    it raises is that job's ``error``, and the next job runs.
    """

    name = "local"

    def run(self, jobs: Sequence[ExecJob]) -> Iterator[Completion]:
        host = socket.gethostname()
        for index, job in enumerate(jobs):
            try:
                result = job.fn(*job.args)
            except Exception as exc:  # noqa: BLE001 - one job's fault, the batch goes on
                yield Completion(index, job, self.name, failure=ERROR, node=host,
                                 reason=f"{type(exc).__name__}: {exc}", finished_at=_now())
                continue
            yield Completion(index, job, self.name, result=result, node=host,
                             finished_at=_now())

    def max_gpus_per_node(self) -> int | None:
        return None

    def close(self) -> None:
        pass


def _on_ray_worker(fn: Callable[..., Any], args: tuple) -> dict[str, Any]:
    """What a Ray task runs: the job, and where it ran (read before the job can die)."""
    import ray

    context = ray.get_runtime_context()
    where = {"node_id": context.get_node_id(), "hostname": socket.gethostname(),
             "devices": [str(g) for g in ray.get_gpu_ids()], "pid": os.getpid()}
    return {**where, "result": fn(*args)}


class RayExecutor:
    """Jobs as Ray tasks on an existing cluster (``address``: ``"auto"``, ``"ray://..."``) or
    on a local one started for the run (``address=None``).

    Each task asks for the job's CPUs and GPUs (Ray then sets its ``CUDA_VISIBLE_DEVICES``)
    and is never retried (``max_retries=0``): a worker or node lost mid-job is that job's
    ``crashed`` failure, recorded, and the other tasks go on. A job no node can hold (more
    GPUs than any node has) fails at once as ``unschedulable`` instead of waiting forever.
    """

    name = "ray"

    def __init__(self, address: str | None = None, **init_options: Any):
        try:
            import ray
        except ImportError:
            raise ExecutorUnavailable(
                "the ray executor needs Ray: install fwsurvey with its 'ray' extra "
                "(pip install -c constraints.txt -e '.[ray]')") from None
        self._ray = ray
        self.address = address
        self._owned = False
        if not ray.is_initialized():
            if address is None:  # a cluster of our own: no metrics agent to complain about
                init_options.setdefault("_system_config", {"enable_metrics_collection": False})
            try:
                with warnings.catch_warnings():  # Ray's notice of a future default, not ours
                    warnings.simplefilter("ignore", FutureWarning)
                    ray.init(address=address, include_dashboard=False, log_to_driver=False,
                             configure_logging=False, **init_options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorUnavailable(
                    f"cannot reach a Ray cluster at {address or 'a new local cluster'}: "
                    f"{exc}") from None
            self._owned = True
        self._remote = ray.remote(_on_ray_worker)

    def _nodes(self) -> list[dict[str, float]]:
        return [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]

    def max_gpus_per_node(self) -> int | None:
        return int(max((n.get("GPU", 0) for n in self._nodes()), default=0))

    def run(self, jobs: Sequence[ExecJob]) -> Iterator[Completion]:
        ray = self._ray
        nodes = self._nodes()
        pending: dict[Any, int] = {}
        for index, job in enumerate(jobs):
            try:
                options = ray_options(job.resources, nodes)
            except ValueError as exc:
                yield Completion(index, job, self.name, failure=UNSCHEDULABLE,
                                 reason=str(exc), finished_at=_now())
                continue
            ref = self._remote.options(name=job.label[:100], **options).remote(job.fn,
                                                                               job.args)
            pending[ref] = index
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ref)
                yield self._completion(index, jobs[index], ref)
        finally:
            for ref in pending:  # the caller stopped early (Ctrl-C, an error): cancel the rest
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001,S110 - best effort on the way out
                    pass

    def _completion(self, index: int, job: ExecJob, ref: Any) -> Completion:
        exceptions = self._ray.exceptions
        lost = tuple(getattr(exceptions, name) for name in (
            "WorkerCrashedError", "NodeDiedError", "ActorDiedError", "OutOfMemoryError",
            "LocalRayletDiedError", "ObjectLostError") if hasattr(exceptions, name))
        try:
            out = self._ray.get(ref)
        except lost as exc:
            return Completion(index, job, self.name, failure=CRASHED, finished_at=_now(),
                              reason=f"the Ray worker running it was lost "
                                     f"({type(exc).__name__}: {_first_line(exc)})")
        except exceptions.TaskCancelledError as exc:
            return Completion(index, job, self.name, failure=CRASHED, finished_at=_now(),
                              reason=f"cancelled ({_first_line(exc)})")
        except exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return Completion(index, job, self.name, failure=ERROR, finished_at=_now(),
                              reason=f"{type(cause).__name__}: {_first_line(cause)}")
        node = f"{out['hostname']} ({out['node_id']})"
        return Completion(index, job, self.name, result=out["result"], node=node,
                          devices=tuple(out["devices"]), finished_at=_now())

    def close(self) -> None:
        """Disconnect, shutting down the local cluster if this executor started it."""
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False


def ray_options(resources: Resources, nodes: list[dict[str, float]]) -> dict[str, Any]:
    """Ray task options for ``resources`` on a cluster of ``nodes`` (each node's resource
    totals); raises ValueError when no node fits them."""
    cpus = resources.cpus
    if resources.per_node:  # a share of the largest node that has the GPUs it needs
        largest = max((n.get("CPU", 0) for n in nodes
                       if n.get("GPU", 0) >= resources.gpus), default=0)
        cpus = max(cpus, largest / resources.per_node)
    fits = [n for n in nodes if n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= resources.gpus]
    if not fits:
        most = max((n.get("GPU", 0) for n in nodes), default=0)
        raise ValueError(f"needs {cpus:g} CPUs and {resources.gpus} GPUs on one node; "
                         f"the cluster's nodes have at most "
                         f"{max((n.get('CPU', 0) for n in nodes), default=0):g} CPUs "
                         f"and {most:g} GPUs")
    options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": resources.gpus,
                               "max_retries": 0, "retry_exceptions": False}
    if resources.memory_mb:
        options["memory"] = resources.memory_mb << 20
    return options


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:500] if lines else ""


def make_executor(name: str = "local", address: str | None = None) -> Executor:
    """The executor called ``name``: ``local``, or ``ray`` at ``address``."""
    if name == "local":
        if address:
            raise ValueError("--address is for the ray executor")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")

