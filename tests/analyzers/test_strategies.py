"""Distributed strategies: configured symbols probed by introspection in a subprocess."""

from __future__ import annotations

import json
import textwrap

import pytest

from fwsurvey.analyzers.library_surface import inventory, strategy_records
from fwsurvey.analyzers.settings import StrategySpec, strategy_settings
from fwsurvey.config import ConfigError, load_config, parse_config

TOY = '''
    def Loop(model, tasks, n_devices=None):
        """Trains on every local device."""


    def pmap(fn):
        return fn
    '''

SPEC = StrategySpec(
    symbols={"data_parallel": ("toydist.Loop(n_devices)", "toydist.pmap"),
             "fully_sharded": ("toydist.Loop(n_shards)",),
             "tensor_parallel": ("toydist.tensor.parallelize",),
             "pipeline_parallel": ()},
    notes={"pipeline_parallel": "none shipped"})


@pytest.fixture(scope="module")
def surface(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    (root / "toydist.py").write_text(textwrap.dedent(TOY).lstrip(), encoding="utf-8")
    return inventory("toy", {}, paths=(str(root),), probes=SPEC.probes(), timeout=60)


def test_probes_check_names_and_parameters(surface):
    probes = surface.probes
    assert probes["toydist.Loop(n_devices)"] == {"found": True, "defined_as": "toydist.Loop",
                                                 "error": None}
    assert probes["toydist.pmap"]["found"] is True
    assert probes["toydist.Loop(n_shards)"]["found"] is False
    assert "takes no parameter 'n_shards'" in probes["toydist.Loop(n_shards)"]["error"]
    assert probes["toydist.tensor.parallelize"]["found"] is False
    assert surface.errors == []  # an absent strategy is a finding, not an error


def test_strategy_rows_say_what_is_shipped(surface):
    records = strategy_records(surface, SPEC, fetched_at="2026-11-27T12:00:00+00:00",
                               package_version="0.1")
    rows = {r.row["strategy"]: r.row for r in records}
    assert list(rows) == ["data_parallel", "fully_sharded", "tensor_parallel",
                          "pipeline_parallel"]  # report order; multi_host_launch unconfigured
    assert rows["data_parallel"]["shipped"] is True
    assert rows["data_parallel"]["found"] == ["toydist.Loop(n_devices)", "toydist.pmap"]
    assert (rows["fully_sharded"]["shipped"], rows["fully_sharded"]["missing"]) == (
        False, ["toydist.Loop(n_shards)"])
    assert rows["tensor_parallel"]["shipped"] is False
    assert rows["pipeline_parallel"]["symbols"] == []
    assert rows["pipeline_parallel"]["note"] == "none shipped"


def test_repository_strategies_are_valid():
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / "fwsurvey.toml")
    strategies = strategy_settings(config)
    assert "torch.nn.parallel.DistributedDataParallel" in strategies["pytorch"].probes()
    assert "trax.supervised.training.Loop(n_devices)" in strategies["trax"].probes()
    assert json.dumps(strategies["trax"].symbols["tensor_parallel"]) == "[]"


@pytest.mark.parametrize("table, key, message", [
    ({"trax": {"fsdp": ["a.b"]}}, "trax.fsdp", "unknown strategy; one of data_parallel, "
     "fully_sharded, tensor_parallel, pipeline_parallel, multi_host_launch, or notes"),
    ({"trax": {"data_parallel": ["a.b(c"]}}, "trax.data_parallel",
     "'a.b(c' is not a dotted name or Name(parameter)"),
    ({"nope": {"data_parallel": []}}, "nope", "'nope' is not a configured framework"),
    ({"trax": {"notes": {"fsdp": "x"}}}, "trax.notes.fsdp",
     "expected a strategy (data_parallel, fully_sharded, tensor_parallel, pipeline_parallel, "
     "multi_host_launch) and a string"),
])
def test_strategy_config_errors_name_the_key(tmp_path, table, key, message):
    raw = {"frameworks": {"trax": {"name": "Trax"}, "jax": {"name": "JAX"}},
           "analyzers": {"distributed_strategies": table}}
    config = parse_config(raw, tmp_path / "fwsurvey.toml")
    with pytest.raises(ConfigError) as info:
        strategy_settings(config)
    assert str(info.value) == f"fwsurvey.toml: analyzers.distributed_strategies.{key}: {message}"
