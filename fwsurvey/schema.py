"""The database schema, as migrations, and how each table is written.

The schema is a public interface (Datasette users query it): tables and columns are only
ever added by new migrations, never renamed in place. Every table and column has a
description in ``datasette.yml``; a test checks that none is missing.

Three kinds of tables a stage writes, each told by its own definition (:func:`table_spec`;
nothing else lists them):

* **history** tables keep one row per run per item (``run_id`` is part of the key), so
  values that change over time can be trended; each has a ``*_latest`` view.
* **fact** tables keep one row per immutable thing (a release), upserted on every run:
  ``first_run_id`` records the run that first saw it, ``run_id``/``fetched_at`` the last.
* **state** tables (neither): ``source_state`` keeps each source's resume points
  (watermarks), upserted in the same transaction as the rows they cover, so a watermark
  never passes what was stored; ``ergonomics_cache`` keeps analysis results by content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("fwsurvey")

PROVENANCE = """
    run_id INTEGER NOT NULL REFERENCES runs(id),
    source TEXT NOT NULL,
    fetched_at TEXT NOT NULL"""


@migrations()
def m001_runs(db: Database) -> None:
    db.executescript("""
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        command TEXT NOT NULL,
        stages TEXT NOT NULL,
        tool_version TEXT NOT NULL,
        python_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        versions TEXT NOT NULL,
        config_sha256 TEXT,
        pid INTEGER
    );
    CREATE TABLE run_sources (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        stage TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        items_ok INTEGER NOT NULL DEFAULT 0,
        items_failed INTEGER NOT NULL DEFAULT 0,
        rows_written INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (run_id, stage, source)
    );
    CREATE TABLE item_errors (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        stage TEXT NOT NULL,
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX item_errors_run ON item_errors(run_id, source);
    CREATE VIEW source_status_latest AS
        SELECT rs.* FROM run_sources rs
        JOIN (SELECT stage, source, MAX(run_id) AS run_id FROM run_sources
              GROUP BY stage, source) latest
        USING (stage, source, run_id);
    """)


@migrations()
def m002_pypi(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE pypi_packages (
        {PROVENANCE},
        package TEXT NOT NULL,
        framework TEXT NOT NULL,
        latest_version TEXT,
        file_count INTEGER NOT NULL,
        release_count INTEGER NOT NULL,
        prerelease_count INTEGER NOT NULL,
        yanked_release_count INTEGER NOT NULL,
        releases_last_12_months INTEGER NOT NULL,
        median_days_between_releases REAL,
        days_since_last_release REAL,
        first_release_at TEXT,
        latest_release_at TEXT,
        metadata_source TEXT,
        metadata_version TEXT,
        summary TEXT,
        license TEXT,
        license_expression TEXT,
        requires_python TEXT,
        requires_dist_count INTEGER,
        project_urls TEXT,
        home_page TEXT,
        PRIMARY KEY (run_id, package)
    );
    CREATE VIEW pypi_packages_latest AS
        SELECT p.* FROM pypi_packages p
        JOIN (SELECT package, MAX(run_id) AS run_id FROM pypi_packages GROUP BY package) latest
        USING (package, run_id);
    CREATE TABLE pypi_releases (
        package TEXT NOT NULL,
        version TEXT NOT NULL,
        framework TEXT NOT NULL,
        is_prerelease INTEGER,
        uploaded_at TEXT,
        last_upload_at TEXT,
        yanked INTEGER NOT NULL,
        yanked_reason TEXT,
        file_count INTEGER NOT NULL,
        wheel_count INTEGER NOT NULL,
        sdist_count INTEGER NOT NULL,
        other_count INTEGER NOT NULL,
        total_bytes INTEGER,
        python_tags TEXT,
        abi_tags TEXT,
        platforms TEXT,
        requires_python TEXT,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (package, version)
    );
    CREATE INDEX pypi_releases_framework ON pypi_releases(framework, uploaded_at);
    """)


@migrations()
def m003_source_state(db: Database) -> None:
    db.executescript("""
    CREATE TABLE source_state (
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (source, item, name)
    );
    """)


@migrations()
def m004_community(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE github_repos (
        {PROVENANCE},
        repo TEXT NOT NULL,
        framework TEXT NOT NULL,
        full_name TEXT NOT NULL,
        renamed INTEGER NOT NULL,
        stars INTEGER NOT NULL,
        forks INTEGER NOT NULL,
        subscribers INTEGER,
        open_issues INTEGER,
        open_pull_requests INTEGER,
        archived INTEGER NOT NULL,
        default_branch TEXT,
        license TEXT,
        topics TEXT,
        created_at TEXT,
        pushed_at TEXT,
        contributor_count INTEGER,
        contributors_complete INTEGER,
        commit_activity_status TEXT NOT NULL,
        commits_last_52_weeks INTEGER,
        commits_last_13_weeks INTEGER,
        release_count INTEGER,
        tag_count INTEGER,
        issues_synced_until TEXT,
        rate_limit_remaining INTEGER,
        PRIMARY KEY (run_id, repo)
    );
    CREATE VIEW github_repos_latest AS
        SELECT g.* FROM github_repos g
        JOIN (SELECT repo, MAX(run_id) AS run_id FROM github_repos GROUP BY repo) latest
        USING (repo, run_id);
    CREATE TABLE github_commit_activity (
        repo TEXT NOT NULL,
        week TEXT NOT NULL,
        framework TEXT NOT NULL,
        commits INTEGER NOT NULL,
        days TEXT NOT NULL,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (repo, week)
    );
    CREATE TABLE github_contributors (
        repo TEXT NOT NULL,
        login TEXT NOT NULL,
        framework TEXT NOT NULL,
        contributions INTEGER NOT NULL,
        is_bot INTEGER NOT NULL,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (repo, login)
    );
    CREATE TABLE github_releases (
        repo TEXT NOT NULL,
        kind TEXT NOT NULL,
        tag_name TEXT NOT NULL,
        framework TEXT NOT NULL,
        name TEXT,
        published_at TEXT,
        prerelease INTEGER,
        draft INTEGER,
        commit_sha TEXT,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (repo, kind, tag_name)
    );
    CREATE TABLE github_issues (
        repo TEXT NOT NULL,
        number INTEGER NOT NULL,
        framework TEXT NOT NULL,
        is_pull_request INTEGER NOT NULL,
        state TEXT NOT NULL,
        author TEXT,
        author_is_bot INTEGER NOT NULL,
        author_association TEXT,
        comments INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        closed_at TEXT,
        merged_at TEXT,
        first_response_at TEXT,
        first_response_by TEXT,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (repo, number)
    );
    CREATE INDEX github_issues_created ON github_issues(repo, created_at);
    CREATE TABLE community_metrics (
        {PROVENANCE},
        item TEXT NOT NULL,
        framework TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL,
        unit TEXT NOT NULL,
        window_start TEXT,
        window_end TEXT,
        sample_size INTEGER,
        basis TEXT NOT NULL,
        PRIMARY KEY (run_id, source, item, metric)
    );
    CREATE VIEW community_metrics_latest AS
        SELECT m.* FROM community_metrics m
        JOIN (SELECT source, item, metric, MAX(run_id) AS run_id FROM community_metrics
              GROUP BY source, item, metric) latest
        USING (source, item, metric, run_id);
    CREATE TABLE git_repos (
        {PROVENANCE},
        framework TEXT NOT NULL,
        clone_path TEXT NOT NULL,
        head_sha TEXT NOT NULL,
        commit_count INTEGER NOT NULL,
        author_count INTEGER NOT NULL,
        first_commit_at TEXT,
        last_commit_at TEXT,
        tag_count INTEGER NOT NULL,
        new_commits INTEGER NOT NULL,
        PRIMARY KEY (run_id, framework)
    );
    CREATE VIEW git_repos_latest AS
        SELECT g.* FROM git_repos g
        JOIN (SELECT framework, MAX(run_id) AS run_id FROM git_repos GROUP BY framework) latest
        USING (framework, run_id);
    CREATE TABLE git_commits (
        framework TEXT NOT NULL,
        sha TEXT NOT NULL,
        author_name TEXT NOT NULL,
        author_email TEXT NOT NULL,
        authored_at TEXT NOT NULL,
        committed_at TEXT NOT NULL,
        files_changed INTEGER NOT NULL,
        insertions INTEGER NOT NULL,
        deletions INTEGER NOT NULL,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (framework, sha)
    );
    CREATE INDEX git_commits_month ON git_commits(framework, committed_at);
    CREATE VIEW git_monthly_activity AS
        SELECT framework, substr(committed_at, 1, 7) AS month, count(*) AS commits,
               count(DISTINCT author_email) AS authors, sum(files_changed) AS files_changed
        FROM git_commits GROUP BY framework, month;
    CREATE TABLE git_tags (
        framework TEXT NOT NULL,
        tag TEXT NOT NULL,
        sha TEXT NOT NULL,
        tagged_at TEXT,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (framework, tag)
    );
    CREATE TABLE downloads (
        {PROVENANCE},
        package TEXT NOT NULL,
        framework TEXT NOT NULL,
        last_day INTEGER,
        last_week INTEGER,
        last_month INTEGER,
        series_start TEXT,
        series_end TEXT,
        series_days INTEGER NOT NULL,
        series_total INTEGER NOT NULL,
        PRIMARY KEY (run_id, package)
    );
    CREATE VIEW downloads_latest AS
        SELECT d.* FROM downloads d
        JOIN (SELECT package, MAX(run_id) AS run_id FROM downloads GROUP BY package) latest
        USING (package, run_id);
    CREATE TABLE downloads_daily (
        package TEXT NOT NULL,
        date TEXT NOT NULL,
        framework TEXT NOT NULL,
        downloads INTEGER NOT NULL,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (package, date)
    );
    CREATE TABLE docs_metrics (
        {PROVENANCE},
        framework TEXT NOT NULL,
        origin TEXT NOT NULL,
        location TEXT NOT NULL,
        method TEXT NOT NULL,
        page_count INTEGER,
        tutorial_pages INTEGER,
        example_pages INTEGER,
        example_scripts INTEGER,
        notebooks INTEGER,
        examples_last_modified TEXT,
        readme_chars INTEGER,
        PRIMARY KEY (run_id, framework, origin)
    );
    CREATE VIEW docs_metrics_latest AS
        SELECT d.* FROM docs_metrics d
        JOIN (SELECT framework, origin, MAX(run_id) AS run_id FROM docs_metrics
              GROUP BY framework, origin) latest
        USING (framework, origin, run_id);
    """)


@migrations()
def m005_analyzers(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE ergonomics_files (
        {PROVENANCE},
        path TEXT NOT NULL,
        origin TEXT NOT NULL,
        task TEXT,
        framework TEXT,
        status TEXT NOT NULL,
        message TEXT,
        bytes INTEGER,
        content_sha256 TEXT,
        notebook INTEGER NOT NULL DEFAULT 0,
        magic_lines INTEGER NOT NULL DEFAULT 0,
        phase_split TEXT,
        cached INTEGER NOT NULL DEFAULT 0,
        analyzer_version TEXT NOT NULL,
        PRIMARY KEY (run_id, path)
    );
    CREATE TABLE ergonomics_metrics (
        {PROVENANCE},
        path TEXT NOT NULL,
        task TEXT,
        framework TEXT,
        phase TEXT NOT NULL,
        start_line INTEGER,
        end_line INTEGER,
        concepts INTEGER,
        concept_names TEXT,
        call_sites INTEGER,
        positional_args INTEGER,
        keyword_args INTEGER,
        args_per_call REAL,
        default_keywords INTEGER,
        framework_subclasses INTEGER,
        overridden_methods INTEGER,
        ceremony_calls INTEGER,
        ceremony TEXT,
        sloc INTEGER,
        lloc INTEGER,
        comments INTEGER,
        cyclomatic INTEGER,
        cyclomatic_max INTEGER,
        cognitive INTEGER,
        max_nesting INTEGER,
        halstead_volume REAL,
        maintainability_index REAL,
        halstead_unreliable INTEGER,
        calls INTEGER,
        PRIMARY KEY (run_id, path, phase)
    );
    CREATE INDEX ergonomics_metrics_task ON ergonomics_metrics(task, framework, phase);
    CREATE TABLE ergonomics_pairs (
        {PROVENANCE},
        task TEXT NOT NULL,
        phase TEXT NOT NULL,
        metric TEXT NOT NULL,
        framework_a TEXT NOT NULL,
        framework_b TEXT NOT NULL,
        value_a REAL,
        value_b REAL,
        ratio REAL,
        weight REAL,
        PRIMARY KEY (run_id, task, phase, metric)
    );
    CREATE TABLE ergonomics_cache (
        content_sha256 TEXT NOT NULL,
        analyzer_key TEXT NOT NULL,
        result TEXT NOT NULL,
        {PROVENANCE},
        PRIMARY KEY (content_sha256, analyzer_key)
    );
    CREATE TABLE library_symbols (
        {PROVENANCE},
        framework TEXT NOT NULL,
        category TEXT NOT NULL,
        symbol TEXT NOT NULL,
        kind TEXT NOT NULL,
        defined_as TEXT,
        has_docstring INTEGER NOT NULL,
        has_example INTEGER NOT NULL,
        doc_lines INTEGER NOT NULL,
        PRIMARY KEY (run_id, framework, category, symbol)
    );
    CREATE INDEX library_symbols_category ON library_symbols(framework, category);
    CREATE TABLE library_summary (
        {PROVENANCE},
        framework TEXT NOT NULL,
        category TEXT NOT NULL,
        symbols INTEGER NOT NULL,
        classes INTEGER NOT NULL,
        functions INTEGER NOT NULL,
        documented INTEGER NOT NULL,
        with_example INTEGER NOT NULL,
        package_version TEXT,
        spec_sha256 TEXT,
        note TEXT,
        PRIMARY KEY (run_id, framework, category)
    );
    CREATE TABLE library_index (
        {PROVENANCE},
        framework TEXT NOT NULL,
        name TEXT NOT NULL,
        defined_as TEXT,
        defaults TEXT,
        methods TEXT,
        PRIMARY KEY (run_id, framework, name)
    );
    """)


@migrations()
def m006_kernels(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE kernel_runs (
        {PROVENANCE},
        job TEXT NOT NULL,
        task TEXT NOT NULL,
        framework TEXT NOT NULL,
        mode TEXT NOT NULL,
        experiment TEXT NOT NULL,
        variant TEXT NOT NULL,
        profile TEXT NOT NULL,
        status TEXT NOT NULL,
        phase_reached TEXT,
        error TEXT,
        device TEXT NOT NULL,
        device_name TEXT,
        precision TEXT NOT NULL,
        versions TEXT,
        n_params INTEGER,
        batch INTEGER,
        seq_len INTEGER,
        seq_lens TEXT,
        steps INTEGER,
        timed_steps INTEGER,
        import_s REAL,
        data_s REAL,
        build_s REAL,
        first_step_s REAL,
        step_median_ms REAL,
        step_iqr_ms REAL,
        step_mean_ms REAL,
        throughput REAL,
        throughput_unit TEXT,
        peak_mem_mb REAL,
        mem_kind TEXT,
        first_loss REAL,
        final_loss REAL,
        eval_metric TEXT,
        eval_value REAL,
        target REAL,
        target_mode TEXT,
        reached_target INTEGER,
        compiles_total INTEGER,
        compiles_timed INTEGER,
        compile_s_total REAL,
        compile_s_timed REAL,
        flops_per_step REAL,
        mfu REAL,
        resume_status TEXT,
        resumed_at_step INTEGER,
        resume_error TEXT,
        wall_s REAL,
        PRIMARY KEY (run_id, job)
    );
    CREATE VIEW kernel_runs_latest AS
        SELECT k.* FROM kernel_runs k
        JOIN (SELECT job, MAX(run_id) AS run_id FROM kernel_runs GROUP BY job) latest
        USING (job, run_id);
    CREATE TABLE kernel_curves (
        {PROVENANCE},
        job TEXT NOT NULL,
        step INTEGER NOT NULL,
        loss REAL NOT NULL,
        PRIMARY KEY (run_id, job, step)
    );
    """)


@migrations()
def m007_claims(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE survey_frameworks (
        {PROVENANCE},
        framework TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        engine_for TEXT,
        pypi TEXT,
        github TEXT,
        PRIMARY KEY (run_id, framework)
    );
    CREATE TABLE claims (
        {PROVENANCE},
        claim_id TEXT NOT NULL,
        section TEXT NOT NULL,
        text TEXT NOT NULL,
        sentence TEXT,
        framework_a TEXT NOT NULL,
        framework_b TEXT NOT NULL,
        favours TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL,
        key_numbers TEXT,
        evidence_for INTEGER NOT NULL,
        evidence_against INTEGER NOT NULL,
        evidence_even INTEGER NOT NULL,
        evidence_unusable INTEGER NOT NULL,
        settleable INTEGER NOT NULL,
        rule TEXT NOT NULL,
        registry_sha256 TEXT NOT NULL,
        PRIMARY KEY (run_id, claim_id)
    );
    CREATE VIEW claims_latest AS
        SELECT c.* FROM claims c
        JOIN (SELECT claim_id, MAX(run_id) AS run_id FROM claims GROUP BY claim_id) latest
        USING (claim_id, run_id);
    CREATE TABLE claim_evidence (
        {PROVENANCE},
        claim_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        item TEXT NOT NULL,
        label TEXT NOT NULL,
        unit TEXT,
        better TEXT NOT NULL,
        value_a REAL,
        value_b REAL,
        relative_difference REAL,
        favours TEXT NOT NULL,
        counts TEXT NOT NULL,
        note TEXT,
        data_run_id_a INTEGER,
        data_run_id_b INTEGER,
        data_source_a TEXT,
        data_source_b TEXT,
        data_fetched_at_a TEXT,
        data_fetched_at_b TEXT,
        metric_sql TEXT NOT NULL,
        PRIMARY KEY (run_id, claim_id, metric, item)
    );
    CREATE INDEX claim_evidence_claim ON claim_evidence(claim_id, run_id);
    """)


@migrations()
def m008_kernel_scaling(db: Database) -> None:
    db.executescript(f"""
    CREATE TABLE kernel_scaling (
        {PROVENANCE},
        job TEXT NOT NULL,
        task TEXT NOT NULL,
        framework TEXT NOT NULL,
        env TEXT NOT NULL,
        engine TEXT NOT NULL,
        backend TEXT NOT NULL,
        n_devices INTEGER NOT NULL,
        device TEXT NOT NULL,
        device_name TEXT,
        simulated INTEGER NOT NULL,
        note TEXT,
        profile TEXT NOT NULL,
        precision TEXT NOT NULL,
        status TEXT NOT NULL,
        phase_reached TEXT,
        error TEXT,
        versions TEXT,
        jax_version TEXT,
        global_batch INTEGER NOT NULL,
        per_device_batch INTEGER NOT NULL,
        seq_len INTEGER,
        steps INTEGER,
        timed_steps INTEGER,
        step_median_ms REAL,
        step_iqr_ms REAL,
        throughput REAL,
        throughput_unit TEXT,
        efficiency REAL,
        comm_share REAL,
        comm_note TEXT,
        first_loss REAL,
        final_loss REAL,
        loss_max_abs_diff REAL,
        loss_tolerance REAL,
        loss_matches_1 INTEGER,
        mfu REAL,
        peak_mem_mb REAL,
        mem_kind TEXT,
        wall_s REAL,
        PRIMARY KEY (run_id, job)
    );
    CREATE VIEW kernel_scaling_latest AS
        SELECT k.* FROM kernel_scaling k
        JOIN (SELECT job, MAX(run_id) AS run_id FROM kernel_scaling GROUP BY job) latest
        USING (job, run_id);
    CREATE TABLE distributed_strategies (
        {PROVENANCE},
        framework TEXT NOT NULL,
        strategy TEXT NOT NULL,
        symbols TEXT NOT NULL,
        found TEXT NOT NULL,
        missing TEXT NOT NULL,
        shipped INTEGER NOT NULL,
        package_version TEXT,
        note TEXT,
        PRIMARY KEY (run_id, framework, strategy)
    );
    """)


@migrations()
def m009_kernel_samples(db: Database) -> None:
    """Per-step samples of every training job, and what each job's row adds: its
    environment fingerprint, outcome, time to target and the data/compute split."""
    db.executescript(f"""
    CREATE TABLE kernel_samples (
        {PROVENANCE},
        job TEXT NOT NULL,
        task TEXT NOT NULL,
        framework TEXT NOT NULL,
        mode TEXT NOT NULL,
        experiment TEXT NOT NULL,
        variant TEXT NOT NULL,
        device TEXT NOT NULL,
        device_name TEXT,
        precision TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        window INTEGER NOT NULL,
        step INTEGER NOT NULL,
        step_ms REAL NOT NULL,
        data_ms REAL NOT NULL,
        compute_ms REAL NOT NULL,
        PRIMARY KEY (run_id, job, window, step)
    );
    CREATE INDEX kernel_samples_fingerprint ON kernel_samples(fingerprint);
    CREATE VIEW kernel_samples_latest AS
        SELECT k.* FROM kernel_samples k
        JOIN (SELECT job, MAX(run_id) AS run_id FROM kernel_samples GROUP BY job) latest
        USING (job, run_id);
    ALTER TABLE kernel_runs ADD COLUMN fingerprint TEXT;
    ALTER TABLE kernel_runs ADD COLUMN code_sha256 TEXT;
    ALTER TABLE kernel_runs ADD COLUMN windows INTEGER;
    ALTER TABLE kernel_runs ADD COLUMN outcome TEXT;
    ALTER TABLE kernel_runs ADD COLUMN time_to_target_s REAL;
    ALTER TABLE kernel_runs ADD COLUMN steps_to_target INTEGER;
    ALTER TABLE kernel_runs ADD COLUMN data_ms_median REAL;
    ALTER TABLE kernel_runs ADD COLUMN compute_ms_median REAL;
    ALTER TABLE kernel_runs ADD COLUMN matmul_precision TEXT;
    ALTER TABLE kernel_runs ADD COLUMN eval_s REAL;
    """)


#: The columns m010_verdicts adds to ``claims`` and ``claim_evidence`` (name: type).
VERDICT_CLAIM_COLUMNS = {
    "claim_type": "TEXT", "confidence": "TEXT", "fragile": "INTEGER", "sensitivity": "TEXT",
    "previous_verdict": "TEXT", "change_reason": "TEXT", "device_scope": "TEXT",
    "unmeasurable_reason": "TEXT", "primary_metrics": "TEXT", "n_samples": "INTEGER"}
VERDICT_EVIDENCE_COLUMNS = {
    "decision": "TEXT", "ci_low": "REAL", "ci_high": "REAL", "delta": "REAL", "n_a": "INTEGER",
    "n_b": "INTEGER", "tier": "TEXT", "device_scope": "TEXT", "primary_metric": "INTEGER"}


@migrations()
def m010_verdicts(db: Database) -> None:
    """Typed claims, per-row decisions with intervals, stability and confidence (issue #12)."""
    for table, columns in (("claims", VERDICT_CLAIM_COLUMNS),
                           ("claim_evidence", VERDICT_EVIDENCE_COLUMNS)):
        for column, kind in columns.items():
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    # claims_latest selects c.*: recreated so that it lists the new columns too.
    db.executescript("""
    DROP VIEW claims_latest;
    CREATE VIEW claims_latest AS
        SELECT c.* FROM claims c
        JOIN (SELECT claim_id, MAX(run_id) AS run_id FROM claims GROUP BY claim_id) latest
        USING (claim_id, run_id);
    CREATE VIEW claims_summary AS
        SELECT claim_id, section, text, claim_type, verdict, confidence, fragile,
               device_scope, n_samples, previous_verdict
        FROM claims_latest;
    """)


@migrations()
def m011_surface_rules(db: Database) -> None:
    # Category rules written once for every framework (issue #12): which rule and evidence
    # put each symbol in its category, and the rule each summary row counted by.
    db.executescript("""
    ALTER TABLE library_symbols ADD COLUMN basis TEXT;
    ALTER TABLE library_summary ADD COLUMN rule TEXT;
    """)


@migrations()
def m012_git_scale(db: Database) -> None:
    """Git histories at pytorch scale (issue #15): what a commit is (merge, committer), whether
    its file stats could be read (blobless clones, missing blobs), whether a force-push left
    it behind, and which tags the newest run still saw.

    Rows stored before have stats read the old way (all or nothing): 'ok'. ``last_seen_run_id``
    follows ``run_id`` through triggers, since the collector does not know its run's id.
    """
    db.executescript("""
    ALTER TABLE git_commits ADD COLUMN parents INTEGER;
    ALTER TABLE git_commits ADD COLUMN stats_status TEXT;
    ALTER TABLE git_commits ADD COLUMN reachable INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE git_commits ADD COLUMN committer_email TEXT;
    UPDATE git_commits SET stats_status = 'ok';
    ALTER TABLE git_tags ADD COLUMN last_seen_run_id INTEGER;
    UPDATE git_tags SET last_seen_run_id = run_id;
    CREATE TRIGGER git_tags_seen_insert AFTER INSERT ON git_tags BEGIN
        UPDATE git_tags SET last_seen_run_id = NEW.run_id
        WHERE framework = NEW.framework AND tag = NEW.tag;
    END;
    CREATE TRIGGER git_tags_seen_update AFTER UPDATE OF run_id ON git_tags BEGIN
        UPDATE git_tags SET last_seen_run_id = NEW.run_id
        WHERE framework = NEW.framework AND tag = NEW.tag;
    END;
    CREATE VIEW git_tags_current AS
        SELECT t.* FROM git_tags t
        JOIN (SELECT framework, MAX(run_id) AS run_id FROM git_repos GROUP BY framework) latest
        ON t.framework = latest.framework AND t.last_seen_run_id = latest.run_id;
    DROP VIEW git_monthly_activity;
    CREATE VIEW git_monthly_activity AS
        SELECT framework, substr(committed_at, 1, 7) AS month, count(*) AS commits,
               count(DISTINCT author_email) AS authors,
               sum(CASE WHEN stats_status = 'ok' THEN files_changed END) AS files_changed,
               sum(CASE WHEN stats_status = 'ok' THEN insertions END) AS insertions,
               sum(CASE WHEN stats_status = 'ok' THEN deletions END) AS deletions,
               sum(stats_status IS NOT 'ok') AS commits_without_stats
        FROM git_commits
        WHERE reachable = 1 AND (parents IS NULL OR parents <= 1)
        GROUP BY framework, month;
    """)


@migrations()
def m013_github_items(db: Database) -> None:
    """GitHub items at pytorch scale (issue #15): each responder's earliest response to an
    issue or pull request (comments, reviews, review comments; bots and authors are told at
    metric time), when an issue's responses were looked up, which releases, contributors and
    issues the newest listing still saw, and which parts of a repository GitHub would not give.
    """
    db.executescript(f"""
    ALTER TABLE github_issues ADD COLUMN responses_checked_at TEXT;
    ALTER TABLE github_issues ADD COLUMN last_seen_run_id INTEGER;
    ALTER TABLE github_releases ADD COLUMN last_seen_run_id INTEGER;
    ALTER TABLE github_contributors ADD COLUMN last_seen_run_id INTEGER;
    ALTER TABLE github_repos ADD COLUMN unavailable TEXT;
    UPDATE github_issues SET last_seen_run_id = run_id;
    UPDATE github_releases SET last_seen_run_id = run_id;
    UPDATE github_contributors SET last_seen_run_id = run_id;
    CREATE TABLE github_responses (
        repo TEXT NOT NULL,
        number INTEGER NOT NULL,
        framework TEXT NOT NULL,
        responder TEXT NOT NULL,
        responder_type TEXT,
        author_association TEXT,
        kind TEXT NOT NULL,
        responded_at TEXT NOT NULL,
        first_run_id INTEGER NOT NULL REFERENCES runs(id),
        {PROVENANCE},
        PRIMARY KEY (repo, number, responder)
    );
    CREATE INDEX github_issues_checked ON github_issues(repo, responses_checked_at);
    CREATE VIEW github_releases_current AS
        SELECT r.* FROM github_releases r
        JOIN (SELECT repo, kind, MAX(last_seen_run_id) AS run_id FROM github_releases
              GROUP BY repo, kind) latest
        ON r.repo = latest.repo AND r.kind = latest.kind AND r.last_seen_run_id = latest.run_id;
    CREATE VIEW github_contributors_current AS
        SELECT c.* FROM github_contributors c
        JOIN (SELECT repo, MAX(last_seen_run_id) AS run_id FROM github_contributors
              GROUP BY repo) latest
        ON c.repo = latest.repo AND c.last_seen_run_id = latest.run_id;
    """)


@migrations()
def m014_community_metrics(db: Database) -> None:
    """Community metrics computed from the stored items at the claims stage (issue #15): how
    much of the sample was looked up and answered, the definition each value follows, and
    who backs a framework (commit and author shares by organisation)."""
    db.executescript(f"""
    ALTER TABLE community_metrics ADD COLUMN answered_share REAL;
    ALTER TABLE community_metrics ADD COLUMN looked_up_share REAL;
    ALTER TABLE community_metrics ADD COLUMN definition TEXT;
    DROP VIEW community_metrics_latest;
    CREATE VIEW community_metrics_latest AS
        SELECT m.* FROM community_metrics m
        JOIN (SELECT source, item, metric, MAX(run_id) AS run_id FROM community_metrics
              GROUP BY source, item, metric) latest
        USING (source, item, metric, run_id);
    CREATE TABLE community_org_shares (
        {PROVENANCE},
        framework TEXT NOT NULL,
        period TEXT NOT NULL,
        org TEXT NOT NULL,
        commits INTEGER NOT NULL,
        commit_share REAL NOT NULL,
        authors INTEGER NOT NULL,
        author_share REAL NOT NULL,
        window_start TEXT,
        window_end TEXT NOT NULL,
        basis TEXT NOT NULL,
        PRIMARY KEY (run_id, framework, period, org)
    );
    CREATE VIEW community_org_shares_latest AS
        SELECT o.* FROM community_org_shares o
        JOIN (SELECT framework, MAX(run_id) AS run_id FROM community_org_shares
              GROUP BY framework) latest
        USING (framework, run_id);
    """)


@migrations()
def m015_package_sources(db: Database) -> None:
    """Package sources at scale (issue #15): an index without upload times leaves the
    12-month release count unknown (NULL, no longer 0); releases carry the last run that saw
    them, so a deleted release drops out of ``pypi_releases_current``; a documentation crawl
    says how many responses it read and how many pages failed."""
    # SQLite cannot drop a NOT NULL in place: rebuild the table (same columns, same order).
    db["pypi_packages"].transform(not_null={"releases_last_12_months": False})
    db.executescript("""
    ALTER TABLE pypi_releases ADD COLUMN last_seen_run_id INTEGER;
    UPDATE pypi_releases SET last_seen_run_id = run_id;
    CREATE VIEW pypi_releases_current AS
        SELECT r.* FROM pypi_releases r
        JOIN (SELECT package, MAX(run_id) AS run_id FROM pypi_packages GROUP BY package) p
          ON p.package = r.package
        WHERE r.last_seen_run_id >= p.run_id;
    ALTER TABLE docs_metrics ADD COLUMN responses INTEGER;
    ALTER TABLE docs_metrics ADD COLUMN pages_failed INTEGER;
    """)


@migrations()
def m016_executor(db: Database) -> None:
    """Where each training job ran (issue #16): the executor (local or ray) and the node."""
    db.executescript("""
    ALTER TABLE kernel_runs ADD COLUMN executor TEXT;
    ALTER TABLE kernel_runs ADD COLUMN node TEXT;
    ALTER TABLE kernel_scaling ADD COLUMN executor TEXT;
    ALTER TABLE kernel_scaling ADD COLUMN node TEXT;
    """)


@migrations()
def m017_hub(db: Database) -> None:
    """Shared and pre-trained models (issue #14): model counts per framework tag on the
    Hugging Face Hub, with the exact query, whether the count is complete or a lower bound
    (the listing was capped), the client's version, and the top models by downloads."""
    db.executescript(f"""
    CREATE TABLE hub_model_counts (
        {PROVENANCE},
        framework TEXT NOT NULL,
        library_tag TEXT NOT NULL,
        primary_tag INTEGER NOT NULL,
        query TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        model_count INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        max_models INTEGER NOT NULL,
        requests INTEGER,
        client_version TEXT NOT NULL,
        PRIMARY KEY (run_id, framework, library_tag)
    );
    CREATE VIEW hub_model_counts_latest AS
        SELECT h.* FROM hub_model_counts h
        JOIN (SELECT framework, library_tag, MAX(run_id) AS run_id FROM hub_model_counts
              GROUP BY framework, library_tag) latest
        USING (framework, library_tag, run_id);
    CREATE TABLE hub_top_models (
        {PROVENANCE},
        framework TEXT NOT NULL,
        library_tag TEXT NOT NULL,
        rank INTEGER NOT NULL,
        model_id TEXT NOT NULL,
        downloads INTEGER,
        likes INTEGER,
        last_modified TEXT,
        query TEXT NOT NULL,
        PRIMARY KEY (run_id, framework, library_tag, rank)
    );
    """)


@migrations()
def m018_experiments(db: Database) -> None:
    """The experiments of issue #14 (control flow, hybrid code, visualization): torch.compile
    graph breaks per training job, and what each task's own ``checks.py`` observed in a job
    (``kernel_checks``: one row per check, e.g. whether recursion ran, the padding it needed)."""
    db.executescript(f"""
    ALTER TABLE kernel_runs ADD COLUMN graph_breaks INTEGER;
    CREATE TABLE kernel_checks (
        {PROVENANCE},
        job TEXT NOT NULL,
        task TEXT NOT NULL,
        framework TEXT NOT NULL,
        mode TEXT NOT NULL,
        experiment TEXT NOT NULL,
        variant TEXT NOT NULL,
        device TEXT NOT NULL,
        check_name TEXT NOT NULL,
        ok INTEGER,
        value REAL,
        unit TEXT,
        detail TEXT,
        PRIMARY KEY (run_id, job, check_name)
    );
    CREATE VIEW kernel_checks_latest AS
        SELECT c.* FROM kernel_checks c
        JOIN (SELECT job, check_name, MAX(run_id) AS run_id FROM kernel_checks
              GROUP BY job, check_name) latest
        USING (job, check_name, run_id);
    """)


@migrations()
def m020_code_edits(db: Database) -> None:
    """Modular changes (issue #14 §4): the size of each standard edit (swap the optimizer, an
    activation, add a residual block, dropout) per task and framework, measured by the
    analyzers on the variant files against the base implementation."""
    db.executescript(f"""
    CREATE TABLE code_edits (
        {PROVENANCE},
        task TEXT NOT NULL,
        edit TEXT NOT NULL,
        framework TEXT NOT NULL,
        status TEXT NOT NULL,
        base_path TEXT,
        variant_path TEXT,
        lines_added INTEGER,
        lines_removed INTEGER,
        lines_changed INTEGER,
        tokens_added INTEGER,
        tokens_removed INTEGER,
        tokens_changed INTEGER,
        base_tokens INTEGER,
        scopes_touched INTEGER,
        scopes TEXT,
        phases_touched INTEGER,
        phases TEXT,
        note TEXT,
        base_sha256 TEXT,
        variant_sha256 TEXT,
        analyzer_version TEXT NOT NULL,
        PRIMARY KEY (run_id, task, edit, framework)
    );
    CREATE VIEW code_edits_latest AS
        SELECT e.* FROM code_edits e
        JOIN (SELECT task, edit, framework, MAX(run_id) AS run_id FROM code_edits
              GROUP BY task, edit, framework) latest
        USING (task, edit, framework, run_id);
    """)


@dataclass(frozen=True)
class TableSpec:
    """How the store writes one table, read off the table's definition.

    ``history``: plain inserts, ``run_id`` is part of the key. ``fact``: upsert on ``key``,
    keeping ``first_run_id``. ``state``: upsert on ``key`` (a source's resume points, e.g. an
    incremental watermark, written in the same transaction as the rows they describe).
    """

    name: str
    kind: Literal["history", "fact", "state"]
    key: tuple[str, ...]


#: The columns of every table a stage writes: which run wrote a row, from what, and when.
PROVENANCE_COLUMNS = ("run_id", "source", "fetched_at")


def table_spec(db: Database, name: str) -> TableSpec:
    """The spec of table ``name``: its key is its primary key; its kind follows from it.

    ``history`` when ``run_id`` is part of the primary key, ``fact`` when the table has
    ``first_run_id``, otherwise ``state`` (upserted on its key).
    """
    table = db.table(name)
    key = tuple(table.pks)
    if "run_id" in key:
        kind = "history"
    elif "first_run_id" in table.columns_dict:
        kind = "fact"
    else:
        kind = "state"
    return TableSpec(name, kind, key)


def table_specs(db: Database) -> dict[str, TableSpec]:
    """The spec of every table a stage may write: those with the provenance columns.

    The bookkeeping tables (``runs``, ``run_sources``, ``item_errors``) lack them; the store
    writes those itself.
    """
    return {name: table_spec(db, name) for name in db.table_names()
            if set(PROVENANCE_COLUMNS) <= set(db.table(name).columns_dict)}
