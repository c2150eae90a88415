"""The paired reference tasks: where they live and their shared specs.

Each task is a folder ``kernels/<task>/`` with ``spec.toml`` (one spec shared by every
framework: sizes, optimizer, learning rate, batch, steps, seed, per profile) and one
``<framework>_impl.py`` per framework (``pytorch_impl.py``, ``trax_impl.py``,
``jax_impl.py``), written the way that framework's documentation teaches. An
implementation module provides four functions, one per phase, marked with ``# %%`` cells:

* ``load_data(spec)`` → data (``# %% data``)
* ``build_model(spec)`` → model (``# %% model``)
* ``make_trainer(model, data, spec)`` → a step function returning the loss, or a Trax
  ``training.Loop`` (``# %% training``)
* ``evaluate(model, trainer, data, spec)`` → ``{metric: value}`` (``# %% evaluation``)

The files hold only what a user writes: the harness applies compilation, precision and device
placement through each framework's adapter, so no ``pytorch_impl.py`` or ``trax_impl.py``
names a device, ``torch.compile`` or autocast (a JAX user picks the compute dtype, so
``jax_impl.py`` reads ``spec["precision"]``). A pair trains the same way on every side: the
spec's ``[optimizer]`` table lists every hyperparameter and each file passes all of them
explicitly, since the frameworks' defaults differ (Trax's Adam: eps 1e-5 and a weight decay
of 1e-5; PyTorch's: 1e-8 and none). A profile's ``lr`` overrides the table's; the resolved
table is ``spec["optimizer"]`` (:meth:`Task.profile`).

Every ``spec.toml`` is validated when the tasks are discovered (:class:`TaskSpec`): a
misspelt key or a wrong type is one line naming the file and the key. A task needing a new
hyperparameter adds it to :class:`Hyperparameters`. How each framework runs the
implementations (its modes) is its adapter's business (:mod:`fwsurvey.kernels.adapters`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from fwsurvey.errors import ConfigError
from fwsurvey.kernels.adapters import ADAPTERS, adapter_for
from fwsurvey.model import ConfigModel, validate

KERNELS_DIR = Path(__file__).parent
PROFILES = ("quick", "full")
#: Keys every profile needs, set in its table or at the top level (the harness reads them).
REQUIRED = ("seed", "batch", "steps", "warmup_steps")


def _has_adapter(framework: str) -> str:
    adapter_for(framework)  # its ValueError is the message
    return framework


def _is_mode(mode: str) -> str:
    known = [m for adapter in ADAPTERS.values() for m in adapter.mode_names]
    if mode not in known:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(known)}")
    return mode


#: The reference trainings' experiment label. A task of an issue-#14 experiment names its
#: own (``experiment = "recursion"``), so the generic timing metrics, which read
#: ``experiment = 'train'``, never mix an experiment's tasks into their comparisons.
TRAIN = "train"
#: Labels the matrix uses for runs that are not a task's own training.
RESERVED_EXPERIMENTS = ("dynamic", "scaling")


def _experiment_label(label: str) -> str:
    if label in RESERVED_EXPERIMENTS or not label.replace("-", "").isalnum() or \
            label != label.lower():
        raise ValueError(f"{label!r}: a lowercase name other than "
                         f"{' and '.join(RESERVED_EXPERIMENTS)}")
    return label


class OptimizerTable(ConfigModel):
    """``[optimizer]``: every hyperparameter of the one optimizer all sides of a pair build.

    All are required, so no side can fall back on its framework's own default. ``lr`` is
    the default a profile may override; ``weight_decay`` is decoupled (AdamW's, multiplied
    by the learning rate), which Trax's per-step ``weight_decay_rate`` expresses as
    ``lr * weight_decay``.
    """

    name: Literal["adam", "adamw"]
    lr: float
    b1: float
    b2: float
    eps: float
    weight_decay: float
    #: Global gradient-norm clipping before the update, where a task uses it.
    clip_grad_norm: float | None = None


class Hyperparameters(ConfigModel):
    """Keys any level of a spec may set; a profile's table overrides the common ones."""

    seed: int | None = None
    batch: int | None = None
    steps: int | None = None
    warmup_steps: int | None = None
    eval_fraction: float | None = None
    eval_windows: int | None = None
    eval_lines: int | None = None
    checkpoint_every: int | None = None
    # Model sizes.
    hidden: int | None = None
    width: int | None = None
    channels: int | None = None
    vocab: int | None = None
    d_model: int | None = None
    d_ff: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    dropout: float | None = None
    max_len: int | None = None
    seq_len: int | None = None
    # Text pipelines: lines kept, length buckets, the streaming shuffle.
    min_len: int | None = None
    buckets: list[int] | None = None
    shuffle_buffer: int | None = None
    # Generated data (the control-flow experiments): examples, tree and loop sizes.
    n_train: int | None = None
    n_test: int | None = None
    max_leaves: int | None = None
    dim: int | None = None
    max_depth: int | None = None
    halt_p: float | None = None


class ProfileTable(Hyperparameters):
    """``[quick]`` / ``[full]``: a profile may also override the optimizer's learning rate.

    Only here: the ``[dynamic]`` and ``[scaling]`` tables are merged after the optimizer is
    resolved, so a learning rate there would silently not reach it.
    """

    lr: float | None = None
    #: Run only these modes in this profile (overrides the task's ``modes``).
    modes: list[Annotated[str, AfterValidator(_is_mode)]] | None = None


class DynamicTable(Hyperparameters):
    """``[dynamic]``: the sequence lengths the dynamic-shape experiment draws from."""

    seq_lens: list[int]


class ScalingTable(Hyperparameters):
    """``[scaling]``: the data-parallel runs and their loss-parity bounds."""

    loss_tolerance: float | None = None
    loss_tolerance_bf16: float | None = None


class DeployTable(ConfigModel):
    """``[deploy]``: export the trained model to these targets and run it there (issue #14
    §2), in each framework's reference job; the export code is ``<framework>_deploy.py``
    (one ``export_<path>`` function per path), the driver :mod:`fwsurvey.kernels.deploy`."""

    paths: list[Literal["server", "mobile", "web"]]
    #: Timed inferences of the whole test set per path (after one untimed first run).
    repeats: int = 3


class TaskSpec(Hyperparameters):
    """One task's ``spec.toml``."""

    description: str
    metric: str
    target: float | None = None
    target_mode: Literal["min", "max"] = "min"
    flops_model: Literal["transformer"] | None = None
    #: Implementations that can compute in bf16 on a GPU (full profile); every side also
    #: runs fp32, so an fp32 comparison always exists. Required: the precision is stated.
    bf16: list[Annotated[str, AfterValidator(_has_adapter)]]
    #: Implementations that rewrite input-dependent structure into a static one (trees
    #: linearised and padded, loops run to a fixed maximum with masking): what an
    #: experiment's checks.py records as each side's approach; the tests check each claim.
    static_structure: list[Annotated[str, AfterValidator(_has_adapter)]] | None = None
    #: The experiment this task belongs to (kernel_runs.experiment): ``train`` for the
    #: reference trainings, the experiment's name for an experiment's tasks.
    experiment: Annotated[str, AfterValidator(_experiment_label)] = TRAIN
    #: Run only these modes (default: every mode of each implementing adapter). For an
    #: experiment whose question no mode changes (visualization), spare the run the others.
    modes: list[Annotated[str, AfterValidator(_is_mode)]] | None = None
    optimizer: OptimizerTable
    quick: ProfileTable
    full: ProfileTable
    dynamic: DynamicTable | None = None
    scaling: ScalingTable | None = None
    deploy: DeployTable | None = None


@dataclass(frozen=True)
class Task:
    """One paired task: its folder, spec and the frameworks that implement it."""

    name: str
    path: Path
    spec: dict[str, Any]
    frameworks: tuple[str, ...] = field(default=())

    @property
    def description(self) -> str:
        return self.spec.get("description", "")

    def profile(self, profile: str) -> dict[str, Any]:
        """The spec for one profile: common keys, then the profile's own.

        ``optimizer`` is the ``[optimizer]`` table with the profile's ``lr`` (if it sets one)
        in place of the table's: the one place every implementation reads its optimizer from.
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        common = {k: v for k, v in self.spec.items() if not isinstance(v, dict)}
        own = dict(self.spec.get(profile, {}))
        optimizer = dict(self.spec.get("optimizer", {}))
        if "lr" in own:
            optimizer["lr"] = own.pop("lr")
        # The [deploy] table travels whole: the harness's deploy phase reads it.
        deploy = {"deploy": dict(self.spec["deploy"])} if "deploy" in self.spec else {}
        return {**common, **own, **deploy, "optimizer": optimizer, "task": self.name,
                "profile": profile}

    def impl_module(self, framework: str) -> str:
        """The importable module of one implementation."""
        return f"fwsurvey.kernels.{self.name}.{framework}_impl"

    def impl_path(self, framework: str) -> Path:
        return self.path / f"{framework}_impl.py"


def load_spec(spec_path: Path, root: Path = KERNELS_DIR) -> dict[str, Any]:
    """A task's ``spec.toml``, validated; as written (nothing coerced or defaulted).

    Raises ConfigError naming ``<root>/<task>/spec.toml`` and the dotted key at fault.
    """
    shown = spec_path.relative_to(root.parent).as_posix()
    try:
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(spec_path, None, f"not valid TOML: {exc}", shown=shown) from None
    try:
        validate(TaskSpec, spec, spec_path)
    except ConfigError as exc:
        raise ConfigError(spec_path, exc.key, exc.message, shown=shown) from None
    # Checked after the keys themselves, so a misspelt key is named as such, not as missing.
    for profile in PROFILES:
        for key in REQUIRED:
            if key not in spec[profile] and key not in spec:
                raise ConfigError(spec_path, f"{profile}.{key}", "required key is missing "
                                  "(in this table or at the top level)", shown=shown)
    return spec


def discover(root: Path = KERNELS_DIR) -> dict[str, Task]:
    """Every task folder under ``root`` that has a spec, by name (each spec validated)."""
    tasks = {}
    for spec_path in sorted(root.glob("*/spec.toml")):
        folder = spec_path.parent
        spec = load_spec(spec_path, root)
        frameworks = tuple(sorted(p.name[: -len("_impl.py")]
                                  for p in folder.glob("*_impl.py")))
        tasks[folder.name] = Task(folder.name, folder, spec, frameworks)
    return tasks
