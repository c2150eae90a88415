"""The claims registry and its verdicts, on databases built in the tests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fwsurvey.claims import (
    SECTION_SLUGS,
    SECTIONS,
    VERDICTS,
    ClaimsStage,
    RegistryError,
    check_sql,
    evaluate,
    load_registry,
    run_claims,
)
from fwsurvey.config import load_config
from fwsurvey.publish import canned_queries_for, load_datasette_yml, make_app
from fwsurvey.reports import render
from fwsurvey.reports.render import render_report
from fwsurvey.sources import Record
from fwsurvey.stage import StageContext
from fwsurvey.store import SourceOutcome, Store
from tests.claims_equivalence import rejudge

REPO = Path(__file__).parent.parent
RUN_START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

#: A small registry over pypi_packages: the test controls every value it reads.
REGISTRY = """
[rule]
margin = 0.10

[metrics.releases]
label = "releases in 12 months"
unit = "releases"
better = "higher"
sources = ["pypi"]
[metrics.releases.from]
table = "pypi_packages"
join = "package = pypi"
value = "releases_last_12_months"

[metrics.staleness]
label = "days since the last release"
better = "lower"
sources = ["pypi"]
sql = '''
SELECT f.framework, p.days_since_last_release AS value, p.run_id, p.source, p.fetched_at
FROM survey_frameworks f JOIN pypi_packages p ON p.package = f.pypi
WHERE f.run_id = :run_id AND f.framework IN (:a, :b)
  AND p.run_id = (SELECT MAX(run_id) FROM pypi_packages WHERE package = f.pypi
                  AND run_id <= :run_id)
'''

[metrics.stars]
label = "stars"
better = "higher"
sources = ["github"]
sql = '''
SELECT f.framework, g.stars AS value, g.run_id, g.source, g.fetched_at
FROM survey_frameworks f JOIN github_repos g ON g.repo = f.github
WHERE f.run_id = :run_id AND f.framework IN (:a, :b)
'''

[[claims]]
id = "active"
section = "community-ecosystem"
text = "{a} is more active than {b}"
favours = "a"
metrics = ["releases", "staleness"]

[[claims]]
id = "newer-is-b"
section = "community-ecosystem"
text = "{b} releases more"
favours = "b"
metrics = ["releases"]

[[claims]]
id = "larger"
section = "community-ecosystem"
text = "{a} is larger"
favours = "a"
metrics = ["stars"]

[[claims]]
id = "vague"
section = "ease-of-use"
text = "{a} feels nicer"
favours = "a"
unsettleable = "a feeling, not a measurement"
"""


def pypi_row(package: str, framework: str, releases: int, days: float, fetched: datetime):
    return Record("pypi_packages", {
        "package": package, "framework": framework, "fetched_at": fetched.isoformat(),
        "latest_version": "1.0", "file_count": 1, "release_count": releases,
        "prerelease_count": 0, "yanked_release_count": 0, "releases_last_12_months": releases,
        "median_days_between_releases": None, "days_since_last_release": days})


def start_run(store: Store, started: datetime = RUN_START) -> int:
    run_id = store.start_run("test", ["collect"], {})
    store.db.execute("UPDATE runs SET started_at = ? WHERE id = ?",
                     [started.isoformat(), run_id])
    return run_id


def collect(store: Store, run_id: int, rows: list[Record], github: str = "skipped",
            reason: str | None = None) -> None:
    now = RUN_START.isoformat()
    store.write_source(run_id, SourceOutcome("collect", "pypi", "ok", now, now,
                                             items_ok=len(rows)), rows)
    store.write_source(run_id, SourceOutcome("collect", "github", github, now, now,
                                             reason=reason))


@pytest.fixture
def setup(write_config, tmp_path):
    config = load_config(write_config())  # compares trax (a) with jax (b)
    registry_path = tmp_path / "claims.toml"
    registry_path.write_text(REGISTRY)
    store = Store(tmp_path / "c.db")
    yield config, load_registry(registry_path), store
    store.close()


def verdicts_of(store, run_id, config, registry):
    verdicts, records = evaluate(store, run_id, config, registry)
    return {v.claim.id: v for v in verdicts}, records


def test_shipped_registry_is_valid_and_covers_every_section():
    registry = load_registry(REPO / "claims.toml")
    assert check_sql(registry) == []
    sections = {c.section for c in registry.claims}
    assert sections == set(SECTION_SLUGS) == {s.slug for s in SECTIONS}
    # Sections and verdicts are defined once, in fwsurvey.claims; the report uses them.
    assert render.SECTIONS is SECTIONS and render.VERDICTS is VERDICTS
    assert len(registry.claims) >= 30
    # Unmeasurable claims say why; every other claim names primary metrics among its metrics.
    for claim in registry.claims:
        if claim.type == "unmeasurable":
            assert claim.unmeasurable and not claim.metrics, claim.id
        else:
            assert claim.primary and set(claim.primary) <= set(claim.metrics), claim.id
    # Every metric writes its decision spec (tier, device scope) rather than inheriting it.
    for metric in registry.metrics.values():
        assert {"tier", "device_scope"} <= metric.explicit, metric.id
    # The article's assertions that issue #12 found without a claim are claims now.
    assert {"community.larger", "graph.static-efficient", "arch.prebuilt-modules",
            "train.distributed", "ease.concise", "graph.compiles-first",
            "ease.modular-experimentation", "community.popular", "community.pretrained",
            "community.google-research", "perf.gpu-kernels", "community.less-mature",
            "perf.through-jax", "train.visualization", "train.builtin-evaluation"} \
        <= {c.id for c in registry.claims}
    # Experiments not yet built are unmeasurable with "needs experiment", never judged.
    pending = {c.id for c in registry.claims if c.type == "unmeasurable"
               and "needs experiment:" in c.unmeasurable}
    # Issue #14's experiments and the hub source measure these now; deployment is judged per
    # target (server, mobile, web), each from artifacts run in their runtime.
    assert not {"graph.recursion", "arch.hybrid", "train.visualization",
                "community.pretrained", "ease.modular-experimentation",
                "train.deployment-server", "train.deployment-mobile",
                "train.deployment-web"} & pending
    measured = {c.id for c in registry.claims if c.type != "unmeasurable"}
    assert {"ease.modular-experimentation", "train.deployment-mobile",
            "train.deployment-web"} <= measured
    assert "train.deployment" not in {c.id for c in registry.claims}
    # Ages compare with an absolute margin only (a year): the clock moving never flips them.
    for mid in ("pypi_age_days", "repo_age_days"):
        assert (registry.metrics[mid].margin, registry.metrics[mid].min_abs) == (0, 365)


def test_verdicts_follow_the_evidence(setup):
    config, registry, store = setup
    run = start_run(store)
    collect(store, run, [pypi_row("trax", "trax", 12, 5, RUN_START),
                         pypi_row("jax", "jax", 3, 40, RUN_START)],
            github="unreachable", reason="Name or service not known")
    verdicts, records = verdicts_of(store, run, config, registry)

    active = verdicts["active"]
    assert active.verdict == "supported"
    assert active.counts == {"for": 2, "against": 0, "even": 0, "unusable": 0}
    assert (active.claim.type, active.device_scope, active.fragile) == ("comparative", "any", False)
    assert active.sensitivity == {"margin 5%": "supported", "margin 10%": "supported",
                                  "margin 20%": "supported", "equal weights": "supported",
                                  "steep weights": "supported"}
    assert active.confidence == "low"  # static counts only (the registry's default tier)
    assert active.n_samples == 4  # one value per side per counted row
    assert active.key_numbers == ("releases in 12 months: Trax 12 vs JAX 3 releases;"
                                  " days since the last release: Trax 5 vs JAX 40")
    assert verdicts["newer-is-b"].verdict == "contradicted"
    # Nothing from GitHub: no verdict, and the reason says why.
    larger = verdicts["larger"]
    assert larger.verdict == "insufficient evidence"
    assert "github: unreachable in run 1 (Name or service not known)" in larger.reason
    assert verdicts["vague"].verdict == "unmeasurable"  # the registry's old key still reads
    assert "a feeling, not a measurement" in verdicts["vague"].reason
    assert verdicts["vague"].confidence is None and verdicts["vague"].claim.type == "unmeasurable"

    evidence = [r.row for r in records if r.table == "claim_evidence"]
    releases = next(e for e in evidence if e["claim_id"] == "active" and e["metric"] == "releases")
    assert (releases["value_a"], releases["value_b"], releases["favours"], releases["counts"]) \
        == (12.0, 3.0, "a", "for")
    assert (releases["decision"], releases["delta"], releases["tier"], releases["primary_metric"]) \
        == ("a", 0.1, "count", 1)
    assert releases["relative_difference"] == 0.75
    assert (releases["data_run_id_a"], releases["data_source_a"]) == (run, "pypi")
    assert "pypi_packages" in releases["metric_sql"]
    frameworks = {r.row["framework"]: r.row["role"] for r in records
                  if r.table == "survey_frameworks"}
    assert frameworks == {"trax": "a", "jax": "b"}


def test_mixed_even_and_margin(setup):
    config, registry, store = setup
    run = start_run(store)
    # releases favour trax; days since release within 10%: even, which dilutes the share
    # for the claim (it is no longer supported) but never counts against it.
    collect(store, run, [pypi_row("trax", "trax", 12, 100, RUN_START),
                         pypi_row("jax", "jax", 3, 95, RUN_START)])
    verdicts, _ = verdicts_of(store, run, config, registry)
    assert verdicts["active"].verdict == "mixed"
    assert verdicts["active"].counts == {"for": 1, "against": 0, "even": 1, "unusable": 0}
    assert verdicts["active"].reason.startswith("50% of the weighted evidence favours the"
                                                " claim, 0% is against it")


def test_stale_evidence_never_yields_a_verdict(setup):
    config, registry, store = setup
    old = RUN_START - timedelta(days=90)
    first = start_run(store, old)
    collect(store, first, [pypi_row("trax", "trax", 12, 5, old),
                           pypi_row("jax", "jax", 3, 40, old)])
    run = start_run(store)  # registry allows 45 days by default
    verdicts, records = verdicts_of(store, run, config, registry)
    assert verdicts["active"].verdict == "insufficient evidence"
    assert verdicts["active"].counts["unusable"] == 2
    stale = [r.row for r in records if r.table == "claim_evidence" and r.row["favours"] == "stale"]
    assert stale and "older than 45 days" in stale[0]["note"]
    assert stale[0]["data_run_id_a"] == first


def test_metric_sql_runs_read_only_and_failures_are_recorded(setup, tmp_path):
    config, _, store = setup
    path = tmp_path / "bad.toml"
    path.write_text("""
[metrics.writes]
label = "a metric that tries to write"
better = "higher"
sql = "UPDATE runs SET status = 'failed' RETURNING 'trax' AS framework, 1 AS value"

[metrics.broken]
label = "a metric with a typo"
better = "higher"
sql = "SELECT framework, value FROM no_such_table"

[[claims]]
id = "x"
section = "ease-of-use"
text = "{a} wins"
favours = "a"
metrics = ["writes", "broken"]
""")
    registry = load_registry(path)
    problems = check_sql(registry)  # under the same guard as judging
    assert [p.split(":")[0] for p in problems] == ["metrics.writes", "metrics.broken"]
    assert "attempt to write a readonly database" in problems[0]
    run = start_run(store)
    verdicts, records = verdicts_of(store, run, config, registry)
    assert verdicts["x"].verdict == "insufficient evidence"
    notes = {r.row["metric"]: r.row["note"] for r in records if r.table == "claim_evidence"}
    assert "readonly" in notes["writes"] or "read-only" in notes["writes"]
    assert "no such table: no_such_table" in notes["broken"]
    assert store.query("SELECT status FROM runs") == [{"status": "running"}]
    # The survey_frameworks rows the SQL saw were rolled back; records carry them instead.
    assert store.query("SELECT COUNT(*) AS n FROM survey_frameworks")[0]["n"] == 0


def guarded_registry(tmp_path: Path, **metrics: str) -> Path:
    """A registry whose one claim uses ``metrics`` (id → SQL)."""
    path = tmp_path / "guarded.toml"
    tables = "".join(f'[metrics.{mid}]\nlabel = "{mid}"\nbetter = "higher"\nsql = """{sql}"""\n\n'
                     for mid, sql in metrics.items())
    path.write_text(tables + '[[claims]]\nid = "x"\nsection = "ease-of-use"\ntext = "{a} wins"\n'
                    f'favours = "a"\nmetrics = {json.dumps(list(metrics))}\n')
    return path


def judged_notes(store: Store, config, registry) -> dict[str, str]:
    """Each metric's note in judging; a metric whose SQL failed is missing evidence."""
    _, records = verdicts_of(store, start_run(store), config, registry)
    evidence = [r.row for r in records if r.table == "claim_evidence"]
    for row in evidence:
        if row["note"] and "the metric's SQL" in row["note"]:
            assert row["favours"] == "missing"
    return {row["metric"]: row["note"] for row in evidence}


@pytest.mark.parametrize("statement", ["VACUUM INTO '{path}'", "ATTACH '{path}' AS other"])
def test_metric_sql_opens_no_file_in_the_check_or_in_judging(setup, tmp_path, statement):
    config, _, store = setup
    target = tmp_path / "copy.db"
    registry = load_registry(guarded_registry(tmp_path, leak=statement.format(path=target)))
    problems = check_sql(registry)
    assert len(problems) == 1 and problems[0].startswith("metrics.leak: the metric's SQL was"
                                                         " refused: ATTACH or VACUUM")
    assert not target.exists()
    # Judging runs inside a transaction, where SQLite refuses VACUUM by itself.
    note = judged_notes(store, config, registry)["leak"]
    assert note.startswith(("the metric's SQL was refused: ATTACH or VACUUM",
                            "the metric's SQL failed: cannot VACUUM from within a transaction"))
    assert not target.exists()


def test_metric_sql_may_read_pragmas_but_not_set_them(setup, tmp_path):
    config, _, store = setup
    registry = load_registry(guarded_registry(
        tmp_path,
        # pragma_table_info runs PRAGMA table_info inside SQLite: a read, allowed.
        columns="SELECT name AS framework, cid AS value FROM pragma_table_info('runs')",
        unguard="PRAGMA query_only = OFF",
        optimize="PRAGMA optimize"))
    assert check_sql(registry) == [
        "metrics.unguard: the metric's SQL was refused: PRAGMA query_only = OFF is refused:"
        " metric SQL may only read pragmas such as table_info",
        "metrics.optimize: the metric's SQL was refused: PRAGMA optimize is refused:"
        " metric SQL may only read pragmas such as table_info"]
    notes = judged_notes(store, config, registry)
    assert notes["unguard"].startswith("the metric's SQL was refused: PRAGMA query_only = OFF")
    assert not notes["columns"] or "refused" not in notes["columns"]


ENDLESS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
           " SELECT 'trax' AS framework, COUNT(*) AS value FROM c")


def test_a_never_ending_metric_is_stopped_in_the_check_and_in_judging(
        setup, tmp_path, monkeypatch):
    from fwsurvey.claims import judge

    monkeypatch.setattr(judge, "SQL_TIME_LIMIT_S", 0.5)
    config, _, store = setup
    registry = load_registry(guarded_registry(tmp_path, endless=ENDLESS))
    assert check_sql(registry) == [
        "metrics.endless: the metric's SQL ran past 0.5 s and was stopped"]
    notes = judged_notes(store, config, registry)
    assert notes["endless"] == "the metric's SQL ran past 0.5 s and was stopped"


def test_cli_check_reports_a_never_ending_metric(write_config, tmp_path, monkeypatch, capsys):
    from fwsurvey.claims import judge

    monkeypatch.setattr(judge, "SQL_TIME_LIMIT_S", 0.5)
    path = guarded_registry(tmp_path, endless=ENDLESS)
    config = str(write_config())
    for args in (["claims", "--check"], ["claims"]):  # plain claims checks first
        assert invoke(*args, "--registry", str(path), "--config", config) == 2
        assert "metrics.endless: the metric's SQL ran past 0.5 s" in capsys.readouterr().err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('favours = "a"\nmetrics = ["stars"]',
                         'favours = "c"\nmetrics = ["stars"]'),
     "claims[2] (larger).favours: expected a or b, got 'c'"),
    (lambda t: t.replace('metrics = ["stars"]', 'metrics = ["star"]'),
     "claims[2] (larger).metrics: unknown metric 'star'"),
    (lambda t: t.replace('section = "ease-of-use"', 'section = "ease"'),
     "claims[3] (vague).section: unknown section 'ease'"),
    (lambda t: t.replace('id = "larger"', 'id = "active"'),
     "claims[2].id: duplicate claim id 'active'"),
    (lambda t: t.replace('text = "{a} is larger"', 'text = "{c} is larger"'),
     "claims[2] (larger).text: only {a}, {b}, {b_engine} and {engine} may be filled in"),
    (lambda t: t.replace('better = "lower"', 'better = "less"'),
     "metrics.staleness.better: expected higher or lower, got 'less'"),
    (lambda t: t.replace("margin = 0.10", "margin = 0.10\nmargn = 1"),
     "rule.margn: unknown key (misspelt?)"),
    (lambda t: t.replace('unsettleable = "a feeling, not a measurement"', ""),
     "claims[3] (vague).metrics: name the metrics that bear on the claim"),
    (lambda t: t.replace('join = "package = pypi"', 'join = "package = gitlab"'),
     "metrics.releases.from.join: expected \"COLUMN = pypi\" or \"COLUMN = github\","
     " got 'package = gitlab'"),
    (lambda t: t.replace('join = "package = pypi"', 'join = "package = pypi"\nwher = "1"'),
     "metrics.releases.from.wher: unknown key (misspelt?)"),
    (lambda t: t.replace('[metrics.releases.from]', 'sql = "SELECT 1"\n[metrics.releases.from]'),
     "metrics.releases.sql: give sql or [metrics.releases.from], not both"),
    (lambda t: t.replace('value = "releases_last_12_months"', 'value = ""'),
     "metrics.releases.from.value: expected a non-empty string, got ''"),
])
def test_registry_errors_name_the_key(tmp_path, edit, message):
    path = tmp_path / "claims.toml"
    path.write_text(edit(REGISTRY))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert message in str(info.value)
    assert str(info.value).startswith("claims.toml: ")


def test_claims_stage_stores_verdicts_and_report_shows_them_and_what_changed(setup, tmp_path):
    config, registry, store = setup
    run = start_run(store)
    collect(store, run, [pypi_row("trax", "trax", 12, 5, RUN_START),
                         pypi_row("jax", "jax", 3, 40, RUN_START)])
    outcome, verdicts = run_claims(store, run, config, registry.path)
    assert outcome.status == "ok" and outcome.items_ok == 4
    store.finish_run(run, "ok")
    later = start_run(store, RUN_START + timedelta(days=7))
    collect(store, later, [pypi_row("trax", "trax", 2, 50, RUN_START + timedelta(days=7)),
                           pypi_row("jax", "jax", 9, 3, RUN_START + timedelta(days=7))])
    run_claims(store, later, config, registry.path)
    store.finish_run(later, "ok")

    rows = store.query("SELECT claim_id, verdict FROM claims_latest ORDER BY claim_id")
    assert rows == [{"claim_id": "active", "verdict": "contradicted"},
                    {"claim_id": "larger", "verdict": "insufficient evidence"},
                    {"claim_id": "newer-is-b", "verdict": "supported"},
                    {"claim_id": "vague", "verdict": "unmeasurable"}]
    # The second run keeps the first's verdict and says why it changed.
    stored = store.query("SELECT claim_id, previous_verdict, change_reason FROM claims"
                         " WHERE run_id = ? ORDER BY claim_id", [later])
    assert stored[0]["previous_verdict"] == "supported"
    assert stored[0]["change_reason"].startswith("2 evidence rows decide differently:"
                                                 " releases all: a -> b; staleness all: a -> b")
    assert stored[1]["change_reason"] is None  # larger: insufficient evidence both times
    # The report (its wording is the report's: tests/reports) shows the stored verdicts.
    text = render_report(store, config, tmp_path / "report").read_text(encoding="utf-8")
    assert "Trax is more active than JAX" in text and "contradicted" in text
    first = render_report(store, config, tmp_path / "r1", run_id=run).read_text(encoding="utf-8")
    assert "supported" in first


def test_report_says_when_data_is_newer_than_the_verdicts(setup, tmp_path):
    config, registry, store = setup
    run = start_run(store)
    collect(store, run, [pypi_row("trax", "trax", 12, 5, RUN_START),
                         pypi_row("jax", "jax", 3, 40, RUN_START)])
    run_claims(store, run, config, registry.path)
    store.finish_run(run, "ok")
    newer = start_run(store)
    collect(store, newer, [pypi_row("trax", "trax", 1, 5, RUN_START),
                           pypi_row("jax", "jax", 30, 40, RUN_START)])
    store.finish_run(newer, "ok")
    text = render_report(store, config, tmp_path / "report").read_text(encoding="utf-8")
    assert "**Newer data than these verdicts**: run 2 collected or measured after run 1" in text


def test_cli_checks_and_judges(write_config, pypi_index, tmp_path, capsys):
    config = str(write_config())
    assert invoke("claims", "--check", "--config", config) == 0
    assert "claims, " in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(REGISTRY.replace('better = "lower"', 'better = "less"'))
    assert invoke("claims", "--check", "--registry", str(bad), "--config", config) == 2
    assert "metrics.staleness.better" in capsys.readouterr().err
    assert invoke("claims", "--config", config) == 2  # no database yet
    assert "run `fwsurvey run` first" in capsys.readouterr().err

    assert invoke("collect", "--source", "pypi", "--config", config) == 0
    good = tmp_path / "good.toml"
    good.write_text(REGISTRY)
    assert invoke("claims", "--registry", str(good), "--config", config) == 0
    err = capsys.readouterr().err
    assert "Verdicts" in err and "newer-is-b" in err
    store = Store(tmp_path / "out" / "test.db")
    judged = store.query("SELECT claim_id, verdict, evidence_for, evidence_against FROM claims"
                         " WHERE run_id = 2 AND claim_id = 'newer-is-b'")
    # Recorded index: trax had no release in 12 months, jax had 14.
    assert judged == [{"claim_id": "newer-is-b", "verdict": "supported",
                       "evidence_for": 1, "evidence_against": 0}]
    rule = json.loads(store.query("SELECT rule FROM claims LIMIT 1")[0]["rule"])
    assert rule["margin"] == 0.10


def invoke(*args: str) -> int:
    from fwsurvey import cli

    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return info.value.code


def judged(store, config, registry_path, rows=None) -> int:
    """One finished run: PyPI rows collected, then the claims of ``registry_path`` judged."""
    run = start_run(store)
    collect(store, run, rows or [pypi_row("trax", "trax", 12, 5, RUN_START),
                                 pypi_row("jax", "jax", 3, 40, RUN_START)])
    outcome, _ = run_claims(store, run, config, registry_path)
    assert outcome.status == "ok", outcome.reason
    store.finish_run(run, "ok")
    store.checkpoint()  # Datasette reads the database file immutable, without the WAL
    return run


def test_every_claim_has_a_canned_query_showing_its_evidence(setup, tmp_path):
    config, registry, store = setup
    run = judged(store, config, registry.path)
    queries = canned_queries_for(store.path)
    assert sorted(queries) == ["claim_active", "claim_larger", "claim_newer_is_b", "claim_vague"]
    assert queries["claim_active"]["title"] == "Claim: Trax is more active than JAX"
    app = make_app(store.path, load_datasette_yml(REPO / "datasette.yml"), queries)

    async def fetch(path):
        response = await app.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    rows = asyncio.run(fetch(f"/{store.path.stem}/claim_active.json?_shape=array"))
    assert [(r["verdict"], r["metric"], r["value_a"], r["value_b"], r["counts"]) for r in rows] \
        == [("supported", "releases", 12.0, 3.0, "for"),
            ("supported", "staleness", 5.0, 40.0, "for")]
    assert rows[0]["data_run_id_a"] == run and "pypi_packages" in rows[0]["metric_sql"]


def test_shipped_registry_gets_one_canned_query_per_claim(setup):
    config, _, store = setup
    judged(store, config, REPO / "claims.toml")
    queries = canned_queries_for(store.path)
    assert len(queries) == len(load_registry(REPO / "claims.toml").claims)
    assert queries["claim_community_larger"]["title"] == \
        "Claim: Trax has a larger community than JAX"


def test_claim_pages_follow_the_stored_claims_not_the_edited_registry(setup):
    config, registry, store = setup
    judged(store, config, registry.path)
    # Edit the registry after judging: claim "larger" renamed, i.e. one removed, one added.
    registry.path.write_text(REGISTRY.replace('id = "larger"', 'id = "largest"'))
    assert "largest" in {c.id for c in load_registry(registry.path).claims}
    queries = canned_queries_for(store.path)
    assert sorted(queries) == ["claim_active", "claim_larger", "claim_newer_is_b", "claim_vague"]
    # The pages answer from what was stored: the removed claim keeps its evidence page.
    app = make_app(store.path, load_datasette_yml(REPO / "datasette.yml"), queries)
    page = asyncio.run(app.client.get(f"/{store.path.stem}/claim_larger.json?_shape=array"))
    assert page.status_code == 200
    assert [(r["metric"], r["counts"]) for r in page.json()] == [("stars", "unusable")]
    assert asyncio.run(app.client.get(f"/{store.path.stem}/claim_largest.json")).status_code \
        == 404
    # Judged again with the edited registry: the pages follow the new verdicts.
    judged(store, config, registry.path)
    assert sorted(canned_queries_for(store.path)) == [
        "claim_active", "claim_largest", "claim_newer_is_b", "claim_vague"]


def test_database_without_verdicts_has_no_claim_pages(tmp_path):
    Store(tmp_path / "empty.db").close()
    assert canned_queries_for(tmp_path / "empty.db") == {}


#: Pairs of metrics: each shape of the shorthand and the hand-written SQL it stands for.
PAIRS = """
[metrics.join_from]
label = "releases"
better = "higher"
[metrics.join_from.from]
table = "pypi_packages"
join = "package = pypi"
value = "releases_last_12_months"

[metrics.join_sql]
label = "releases"
better = "higher"
sql = '''
SELECT f.framework, p.releases_last_12_months AS value, p.run_id, p.source, p.fetched_at
FROM survey_frameworks f JOIN pypi_packages p ON p.package = f.pypi
WHERE f.run_id = :run_id AND f.framework IN (:a, :b)
  AND p.run_id = (SELECT MAX(run_id) FROM pypi_packages WHERE package = f.pypi
                  AND run_id <= :run_id)
'''

[metrics.per_from]
label = "days"
better = "lower"
[metrics.per_from.from]
table = "pypi_packages"
per = ["package"]
item = "package"
value = "ROUND(days_since_last_release)"
note = "'latest ' || latest_version"
where = "release_count > 0"

[metrics.per_sql]
label = "days"
better = "lower"
sql = '''
SELECT p.framework, p.package AS item, ROUND(p.days_since_last_release) AS value, p.run_id,
       p.source, p.fetched_at, 'latest ' || p.latest_version AS note
FROM pypi_packages p
WHERE p.framework IN (:a, :b) AND p.release_count > 0
  AND p.run_id = (SELECT MAX(run_id) FROM pypi_packages
                  WHERE package = p.package AND run_id <= :run_id)
'''

[metrics.newest_from]
label = "releases, newest snapshot"
better = "higher"
[metrics.newest_from.from]
table = "pypi_packages"
value = "releases_last_12_months"
newest_where = "release_count > 0"

[metrics.newest_sql]
label = "releases, newest snapshot"
better = "higher"
sql = '''
SELECT p.framework, p.releases_last_12_months AS value, p.run_id, p.source, p.fetched_at
FROM pypi_packages p
WHERE p.framework IN (:a, :b)
  AND p.run_id = (SELECT MAX(run_id) FROM pypi_packages
                  WHERE release_count > 0 AND run_id <= :run_id)
'''

[[claims]]
id = "pairs"
section = "community-ecosystem"
text = "{a} wins"
favours = "a"
metrics = ["join_from", "join_sql", "per_from", "per_sql", "newest_from", "newest_sql"]
"""


def test_from_shorthand_runs_the_same_rows_as_hand_written_sql(setup, tmp_path):
    config, _, store = setup
    path = tmp_path / "pairs.toml"
    path.write_text(PAIRS)
    registry = load_registry(path)
    assert check_sql(registry) == []
    old = RUN_START - timedelta(days=3)
    first = start_run(store, old)
    collect(store, first, [pypi_row("trax", "trax", 12, 5, old),
                           pypi_row("jax", "jax", 3, 4, old)])
    store.finish_run(first, "ok")
    run = start_run(store)  # only jax collected again: trax's values come from run 1
    collect(store, run, [pypi_row("jax", "jax", 30, 2, RUN_START)])
    _, records = evaluate(store, run, config, registry)
    evidence = {r.row["metric"]: r.row for r in records if r.table == "claim_evidence"}
    for shape in ("join", "per", "newest"):
        short, hand = evidence[f"{shape}_from"], evidence[f"{shape}_sql"]
        assert {k: (v, hand[k]) for k, v in short.items()
                if k not in ("metric", "metric_sql") and v != hand[k]} == {}, shape
        assert "SELECT MAX(run_id) FROM pypi_packages" in short["metric_sql"]
    assert (evidence["join_from"]["value_a"], evidence["join_from"]["value_b"]) == (12.0, 30.0)
    assert (evidence["join_from"]["data_run_id_a"], evidence["join_from"]["data_run_id_b"]) \
        == (first, run)
    # Newest run of the whole table (no per): trax has no row in it.
    assert evidence["newest_from"]["favours"] == "missing"


def test_claims_stage_ends_as_error_with_the_reason(setup, tmp_path):
    config, registry, store = setup
    run = start_run(store)
    bad = tmp_path / "edited" / "claims.toml"
    bad.parent.mkdir()
    bad.write_text(REGISTRY.replace('favours = "b"', 'favours = "c"'))
    # The community metrics unit runs first; the claims unit's outcome is the second.
    [_, outcome] = ClaimsStage(registry=bad).run(StageContext(store, run, config))
    assert (outcome.stage, outcome.source, outcome.status) == ("claims", "claims", "error")
    assert outcome.reason == "claims.toml: claims[1] (newer-is-b).favours: expected a or b, got 'c'"
    [_, ok] = ClaimsStage(registry=registry.path).run(StageContext(store, run, config))
    assert (ok.status, ok.items_ok) == ("ok", 4), ok.reason
    # 2 survey_frameworks rows, 4 claims, 4 evidence rows, with the outcome.
    assert store.query("SELECT status, rows_written FROM run_sources WHERE source = 'claims'"
                       " AND run_id = ?", [run]) == [{"status": "ok", "rows_written": 10}]


def test_show_sql_prints_what_runs_with_its_parameters(write_config, tmp_path, capsys):
    config = str(write_config())
    registry = tmp_path / "claims.toml"
    registry.write_text(REGISTRY)
    assert invoke("claims", "--show-sql", "releases", "--registry", str(registry),
                  "--config", config) == 0
    out = capsys.readouterr().out
    assert "-- parameters: run_id = the id of a run that judged the claims" in out
    assert "a = trax, b = jax" in out
    assert load_registry(registry).metrics["releases"].sql in out
    assert invoke("claims", "--show-sql", "active", "--registry", str(registry),
                  "--config", config) == 0
    out = capsys.readouterr().out
    assert "-- metric releases:" in out and "-- metric staleness:" in out
    assert invoke("claims", "--show-sql", "nope", "--registry", str(registry),
                  "--config", config) == 2
    assert "no metric or claim 'nope'" in capsys.readouterr().err


def test_rejudging_a_stored_run_finds_no_difference_unless_the_rule_changes(setup, tmp_path):
    config, registry, store = setup
    run = judged(store, config, registry.path)
    same = rejudge(store.path, config, registry)
    assert (same.run_id, same.compared, same.differences) == (
        run, {"claims": 4, "claim_evidence": 4}, [])
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(REGISTRY.replace("margin = 0.10", "margin = 0.90"))
    changed = rejudge(store.path, config, load_registry(stricter))
    # Within a 90% margin every difference is even: never a verdict either way.
    assert "claims ('active',).verdict: stored 'supported', now 'inconclusive'" \
        in changed.differences
