"""Survey configuration: the shipped default, a framework added by configuration, bad input."""

from __future__ import annotations

from pathlib import Path

import pypistats
import pytest

from fwsurvey.analyzers.stage import AnalyzeStage
from fwsurvey.collectors.downloads import DownloadsCollector
from fwsurvey.collectors.pypi import PyPICollector
from fwsurvey.collectors.stage import CollectStage
from fwsurvey.config import ConfigError, load_config

REPO = Path(__file__).parent.parent


def test_shipped_config_defines_the_survey():
    config = load_config(REPO / "fwsurvey.toml")
    assert config.compare == ("pytorch", "trax")
    assert {k: fw.pypi for k, fw in config.frameworks.items()} == {
        "pytorch": ("torch",), "trax": ("trax",), "jax": ("jax",)}
    assert config.frameworks["pytorch"].github == "pytorch/pytorch"
    assert config.frameworks["trax"].github == "google/trax"
    assert config.frameworks["jax"].github == "jax-ml/jax"
    assert config.frameworks["jax"].engine_for == "trax"
    assert config.database == REPO / "out" / "fwsurvey.db"
    assert len(config.sha256) == 64


def test_a_framework_is_added_by_configuration_alone(tmp_path):
    text = (REPO / "fwsurvey.toml").read_text() + (
        '\n[frameworks.flax]\nname = "Flax"\npypi = ["flax"]\ngithub = "google/flax"\n')
    path = tmp_path / "fwsurvey.toml"
    path.write_text(text)
    config = load_config(path)
    items = [(i.key, i.framework) for i in PyPICollector(config).items()]
    assert items == [("torch", "pytorch"), ("trax", "trax"), ("jax", "jax"), ("flax", "flax")]


def write(tmp_path, text):
    path = tmp_path / "fwsurvey.toml"
    if "frameworks.b]" not in text and "[frameworks" in text:
        text += '[frameworks.b]\nname = "B"\n'  # a survey compares at least two
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ('[frameworks.a]\npypi = ["a"]\n', "fwsurvey.toml: frameworks.a.name: required key is missing"),
    ('[frameworks.a]\nname = "A"\npypi = "a"\n',
     "fwsurvey.toml: frameworks.a.pypi: expected a list, got 'a'"),
    ('[frameworks.a]\nname = "A"\npypy = ["a"]\n',
     "fwsurvey.toml: frameworks.a.pypy: unknown key (misspelt?)"),
    ('[frameworks.a]\nname = "A"\ngithub = "not a repo"\n',
     "fwsurvey.toml: frameworks.a.github: expected OWNER/REPO, got 'not a repo'"),
    ('[survey]\ncompare = ["a", "c"]\n[frameworks.a]\nname = "A"\n',
     "fwsurvey.toml: survey.compare: 'c' is not a configured framework"),
    ('[frameworks.a]\nname = "A"\nengine_for = "zz"\n',
     "fwsurvey.toml: frameworks.a.engine_for: names 'zz', which is not a configured framework"),
    ('[frameworks.a]\nname = "A"\npypi = ["x"]\n[frameworks.b]\nname = "B"\npypi = ["X"]\n',
     "fwsurvey.toml: frameworks.b.pypi: package 'X' is already listed under frameworks.a"),
    ('[frameworks.a]\nname = "A"\n[sources.pypi]\nretries = 0\n',
     "fwsurvey.toml: sources.pypi.retries: must be at least 1"),
    ('[frameworks.a]\nname = "A"\n[sources.pypi]\ntimeout = true\n',
     "fwsurvey.toml: sources.pypi.timeout: expected an integer or a number, got True"),
    ('[survey]\ntitle = "x"\n', "fwsurvey.toml: frameworks: required key is missing"),
    ('[frameworks.b]\nname = "B"\n',
     "fwsurvey.toml: frameworks: configure at least two frameworks to compare"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value).startswith(message)


def test_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"fwsurvey.toml: invalid TOML: .*line 1"):
        load_config(write(tmp_path, "[frameworks\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_shipped_config_passes_the_stages_checks():
    config = load_config(REPO / "fwsurvey.toml")
    CollectStage().check(config)
    AnalyzeStage().check(config)


def test_misspelt_framework_key_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, '[frameworks.a]\nname = "A"\ngithib = "a/a"\n'))
    assert str(info.value) == "fwsurvey.toml: frameworks.a.githib: unknown key (misspelt?)"


@pytest.mark.parametrize("table, message", [
    ('[sources.githb]\nenabled = false\n',
     "fwsurvey.toml: sources.githb: unknown source (misspelt?); "
     "known: pypi, github, git, downloads, docs, hub"),
    ('[sources.pypi]\nindex_ur = "https://x.invalid/simple/"\n',
     "fwsurvey.toml: sources.pypi.index_ur: unknown key (misspelt?)"),
    ('[sources.docs]\ncrawl_delay = "fast"\n',
     "fwsurvey.toml: sources.docs.crawl_delay: expected a number, got 'fast'"),
    ('[sources.github]\nper_page = true\n',
     "fwsurvey.toml: sources.github.per_page: expected an integer, got True"),
])
def test_bad_source_table_is_one_line_from_the_collect_check(tmp_path, table, message):
    config = load_config(write(tmp_path, '[frameworks.a]\nname = "A"\n' + table))
    with pytest.raises(ConfigError) as info:
        CollectStage().check(config)
    assert str(info.value) == message


def test_an_empty_source_option_means_its_default(tmp_path):
    config = load_config(write(tmp_path, '[frameworks.a]\nname = "A"\n'
                                         '[sources.downloads]\napi_url = ""\n'))
    CollectStage().check(config)
    assert DownloadsCollector(config).api_url == pypistats.BASE_URL
