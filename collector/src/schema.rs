//! Versioned migrations. `PRAGMA user_version` holds the number of migrations applied; each
//! runs in its own transaction. Never edit a released migration: append a new one, and
//! document the result in `collector/schema.md`.

/// One migration: SQL, then optionally a step in Rust on the same transaction (for data that
/// SQL cannot compute, such as statistics of the raw samples).
pub struct Migration {
    pub sql: &'static str,
    pub then: Option<fn(&rusqlite::Transaction) -> rusqlite::Result<()>>,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration { sql: V1, then: None },
    Migration {
        sql: V2,
        then: Some(crate::ingest::recompute_all_data_points),
    },
    Migration { sql: V3, then: None },
    Migration { sql: V4, then: None },
    Migration { sql: V5, then: None },
    Migration {
        sql: V6,
        then: Some(crate::ingest::describe_all_metrics),
    },
    Migration { sql: V7, then: None },
    Migration { sql: V8, then: None },
    Migration { sql: V9, then: None },
];

const V1: &str =
    // 1: the first schema.
    "
    CREATE TABLE machines (
        id             INTEGER PRIMARY KEY,
        fingerprint    TEXT NOT NULL UNIQUE,
        cpu_model      TEXT NOT NULL,
        logical_cores  INTEGER NOT NULL,
        physical_cores INTEGER,
        memory_bytes   INTEGER NOT NULL,
        kernel         TEXT NOT NULL,
        os             TEXT NOT NULL,
        arch           TEXT NOT NULL,
        rustc          TEXT NOT NULL,
        profile        TEXT NOT NULL
    );
    CREATE TABLE commits (
        sha         TEXT PRIMARY KEY,
        subject     TEXT NOT NULL,
        author_name TEXT NOT NULL,
        author_time INTEGER NOT NULL,
        commit_time INTEGER NOT NULL,
        depth       INTEGER NOT NULL
    );
    CREATE TABLE commit_parents (
        sha      TEXT NOT NULL REFERENCES commits (sha),
        position INTEGER NOT NULL,
        parent   TEXT NOT NULL,
        PRIMARY KEY (sha, position)
    );
    CREATE TABLE runs (
        id                 INTEGER PRIMARY KEY,
        run_uuid           TEXT NOT NULL UNIQUE,
        machine_id         INTEGER NOT NULL REFERENCES machines (id),
        commit_sha         TEXT NOT NULL REFERENCES commits (sha),
        branch             TEXT,
        dirty              INTEGER NOT NULL,
        started_at         TEXT NOT NULL,
        finished_at        TEXT NOT NULL,
        tool_version       TEXT NOT NULL,
        scenario_file      TEXT NOT NULL,
        sample_interval_ms INTEGER NOT NULL,
        seed               INTEGER NOT NULL,
        load_avg_1m        REAL NOT NULL,
        cpu_mhz            INTEGER NOT NULL,
        ingested_at        INTEGER NOT NULL
    );
    CREATE INDEX runs_by_commit ON runs (commit_sha);
    CREATE TABLE scenarios (
        id               INTEGER PRIMARY KEY,
        scenario_id      TEXT NOT NULL,
        definition_hash  TEXT NOT NULL,
        workload         TEXT NOT NULL,
        workload_version INTEGER NOT NULL,
        description      TEXT NOT NULL,
        params           TEXT NOT NULL,
        UNIQUE (scenario_id, definition_hash)
    );
    CREATE TABLE metrics (
        name      TEXT PRIMARY KEY,
        unit      TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('lower', 'higher'))
    );
    CREATE TABLE run_scenarios (
        run_id        INTEGER NOT NULL REFERENCES runs (id),
        scenario_ref  INTEGER NOT NULL REFERENCES scenarios (id),
        warmup_rounds INTEGER NOT NULL,
        rounds        INTEGER NOT NULL,
        PRIMARY KEY (run_id, scenario_ref)
    );
    CREATE TABLE samples (
        run_id       INTEGER NOT NULL,
        scenario_ref INTEGER NOT NULL,
        metric       TEXT NOT NULL REFERENCES metrics (name),
        round        INTEGER NOT NULL,
        value        REAL NOT NULL,
        PRIMARY KEY (run_id, scenario_ref, metric, round),
        FOREIGN KEY (run_id, scenario_ref) REFERENCES run_scenarios (run_id, scenario_ref)
    ) WITHOUT ROWID;
    CREATE TABLE data_points (
        run_id       INTEGER NOT NULL,
        scenario_ref INTEGER NOT NULL,
        metric       TEXT NOT NULL REFERENCES metrics (name),
        n            INTEGER NOT NULL,
        median       REAL NOT NULL,
        ci_lower     REAL NOT NULL,
        ci_upper     REAL NOT NULL,
        ci_level     REAL NOT NULL,
        mean         REAL NOT NULL,
        stddev       REAL NOT NULL,
        PRIMARY KEY (run_id, scenario_ref, metric),
        FOREIGN KEY (run_id, scenario_ref) REFERENCES run_scenarios (run_id, scenario_ref)
    ) WITHOUT ROWID;
    ";

// 2: the rest of the data point, a scenario's round budget and latency histogram, where runs
// come from and what they are for, covariates, verdicts, change points and calibrations.
const V2: &str = "
    ALTER TABLE data_points ADD COLUMN outliers_low_severe INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE data_points ADD COLUMN outliers_low_mild INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE data_points ADD COLUMN outliers_high_mild INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE data_points ADD COLUMN outliers_high_severe INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE data_points ADD COLUMN mde REAL;

    ALTER TABLE run_scenarios ADD COLUMN budget TEXT;
    ALTER TABLE run_scenarios ADD COLUMN latency_histogram TEXT;

    ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'harness'
        CHECK (source IN ('harness', 'bmf', 'criterion'));
    ALTER TABLE runs ADD COLUMN purpose TEXT NOT NULL DEFAULT 'history'
        CHECK (purpose IN ('history', 'calibration'));
    CREATE INDEX runs_by_machine ON runs (machine_id, purpose);
    CREATE INDEX commit_children ON commit_parents (parent);

    CREATE TABLE run_covariates (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        name   TEXT NOT NULL,
        value,  -- no declared type: numbers and text are kept as given
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID;
    INSERT INTO run_covariates (run_id, name, value)
        SELECT id, 'load_avg_1m', load_avg_1m FROM runs
        UNION ALL SELECT id, 'cpu_mhz', cpu_mhz FROM runs;

    CREATE TABLE change_points (
        id             INTEGER PRIMARY KEY,
        machine_id     INTEGER NOT NULL REFERENCES machines (id),
        scenario_ref   INTEGER NOT NULL REFERENCES scenarios (id),
        metric         TEXT NOT NULL REFERENCES metrics (name),
        branch         TEXT NOT NULL,
        commit_sha     TEXT NOT NULL REFERENCES commits (sha),
        previous_sha   TEXT NOT NULL REFERENCES commits (sha),
        points_before  INTEGER NOT NULL,
        points_after   INTEGER NOT NULL,
        mean_before    REAL NOT NULL,
        mean_after     REAL NOT NULL,
        stddev_before  REAL NOT NULL,
        stddev_after   REAL NOT NULL,
        relative_change REAL NOT NULL,
        p_value        REAL NOT NULL,
        kind           TEXT NOT NULL CHECK (kind IN ('regression', 'improvement')),
        detected_at    INTEGER NOT NULL,
        UNIQUE (machine_id, scenario_ref, metric, branch, commit_sha)
    );

    CREATE TABLE verdicts (
        run_id              INTEGER NOT NULL,
        scenario_ref        INTEGER NOT NULL,
        metric              TEXT NOT NULL REFERENCES metrics (name),
        baseline_run_id     INTEGER REFERENCES runs (id),
        commit_n            INTEGER NOT NULL,
        commit_median       REAL NOT NULL,
        baseline_n          INTEGER,
        baseline_median     REAL,
        p_value             REAL,
        q_value             REAL,
        shift               REAL,
        shift_ci_lower      REAL,
        shift_ci_upper      REAL,
        shift_ci_level      REAL,
        relative_change     REAL,
        relative_ci_lower   REAL,
        relative_ci_upper   REAL,
        noise_floor         REAL,
        noise_floor_changes INTEGER,
        threshold           REAL NOT NULL,
        alpha               REAL NOT NULL,
        gate_verdict        TEXT NOT NULL
            CHECK (gate_verdict IN ('regression', 'improvement', 'unchanged', 'noisy', 'new')),
        verdict             TEXT NOT NULL
            CHECK (verdict IN ('regression', 'improvement', 'unchanged', 'noisy', 'new')),
        change_point_id     INTEGER REFERENCES change_points (id) ON DELETE SET NULL,
        statistics_version  INTEGER NOT NULL,
        computed_at         INTEGER NOT NULL,
        PRIMARY KEY (run_id, scenario_ref, metric),
        FOREIGN KEY (run_id, scenario_ref) REFERENCES run_scenarios (run_id, scenario_ref)
    ) WITHOUT ROWID;
    CREATE INDEX verdicts_by_change_point ON verdicts (change_point_id);

    CREATE TABLE calibrations (
        id                  INTEGER PRIMARY KEY,
        calibration_uuid    TEXT NOT NULL UNIQUE,
        machine_id          INTEGER NOT NULL REFERENCES machines (id),
        commit_sha          TEXT NOT NULL REFERENCES commits (sha),
        branch              TEXT,
        scenario_file       TEXT NOT NULL,
        repetitions         INTEGER NOT NULL,
        comparisons         INTEGER NOT NULL,
        failing_comparisons INTEGER NOT NULL,
        alpha               REAL NOT NULL,
        practical_floor     REAL NOT NULL,
        statistics_version  INTEGER NOT NULL,
        started_at          TEXT NOT NULL,
        finished_at         TEXT NOT NULL
    );
    CREATE TABLE calibration_runs (
        calibration_id INTEGER NOT NULL REFERENCES calibrations (id),
        position       INTEGER NOT NULL,
        run_id         INTEGER NOT NULL UNIQUE REFERENCES runs (id),
        PRIMARY KEY (calibration_id, position)
    );
    CREATE TABLE calibration_series (
        calibration_id     INTEGER NOT NULL REFERENCES calibrations (id),
        scenario_ref       INTEGER NOT NULL REFERENCES scenarios (id),
        metric             TEXT NOT NULL REFERENCES metrics (name),
        comparisons        INTEGER NOT NULL,
        false_regressions  INTEGER NOT NULL,
        false_improvements INTEGER NOT NULL,
        noisy              INTEGER NOT NULL,
        false_positive_rate REAL NOT NULL,
        false_positive_upper REAL NOT NULL,
        min_p_value        REAL,
        PRIMARY KEY (calibration_id, scenario_ref, metric)
    ) WITHOUT ROWID;
    ";

// 3: branch comparisons (two interleaved runs and their paired verdicts). SQLite cannot
// change a CHECK constraint in place, so `purpose` is rebuilt: renamed, re-added with the new
// constraint, copied, and the old column (with its constraint) dropped.
const V3: &str = "
    DROP INDEX runs_by_machine;
    ALTER TABLE runs RENAME COLUMN purpose TO purpose_v2;
    ALTER TABLE runs ADD COLUMN purpose TEXT NOT NULL DEFAULT 'history'
        CHECK (purpose IN ('history', 'calibration', 'comparison'));
    UPDATE runs SET purpose = purpose_v2;
    ALTER TABLE runs DROP COLUMN purpose_v2;
    CREATE INDEX runs_by_machine ON runs (machine_id, purpose);
    CREATE TABLE comparisons (
        id            INTEGER PRIMARY KEY,
        uuid          TEXT NOT NULL UNIQUE,
        machine_id    INTEGER NOT NULL REFERENCES machines (id),
        run_a         INTEGER NOT NULL REFERENCES runs (id),
        run_b         INTEGER NOT NULL REFERENCES runs (id),
        label_a       TEXT NOT NULL,
        label_b       TEXT NOT NULL,
        scenario_file TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        finished_at   TEXT NOT NULL
    );
    CREATE TABLE comparison_results (
        comparison_id INTEGER NOT NULL REFERENCES comparisons (id),
        scenario_ref  INTEGER NOT NULL REFERENCES scenarios (id),
        metric        TEXT NOT NULL REFERENCES metrics (name),
        rounds        INTEGER NOT NULL,
        ratio         REAL,
        ci_lower      REAL,
        ci_upper      REAL,
        ci_level      REAL,
        p_value       REAL,
        verdict       TEXT NOT NULL
                      CHECK (verdict IN ('improvement', 'regression', 'unchanged', 'noisy', 'incomparable')),
        note          TEXT,
        PRIMARY KEY (comparison_id, scenario_ref, metric)
    ) WITHOUT ROWID;
    ";

// 4: commits that do not build, recorded by backfill.
const V4: &str = "
    CREATE TABLE build_failures (
        sha         TEXT PRIMARY KEY,
        reason      TEXT NOT NULL,
        recorded_at INTEGER NOT NULL
    );
    ";

// 5: what the site shows of a commit that does not build (NULL for those recorded before).
const V5: &str = "
    ALTER TABLE build_failures ADD COLUMN subject TEXT;
    ALTER TABLE build_failures ADD COLUMN commit_time INTEGER;
    ALTER TABLE build_failures ADD COLUMN branch TEXT;
    ";

// 6: metrics carry their description and display rank, so that readers of the store (the
// site) need not know the catalogue; comparisons say which paired statistics decided them
// (1: the signed-rank test, before this version).
const V6: &str = "
    ALTER TABLE metrics ADD COLUMN description TEXT;
    ALTER TABLE metrics ADD COLUMN display_rank INTEGER;
    ALTER TABLE comparisons ADD COLUMN statistics_version INTEGER NOT NULL DEFAULT 1;
    ";

// 7: per-commit runs paired with a baseline build (`run --baseline`). A history run says how
// its rounds were paired; its paired comparison is stored as a `baseline` comparison (the
// baseline build's side a `comparison` run); each verdict names the rule that decided it.
// Calibrations may measure the paired rule, with the same build on both sides or a build
// with a known injected cost as B.
const V7: &str = "
    ALTER TABLE runs ADD COLUMN pairing TEXT;
    ALTER TABLE comparisons ADD COLUMN kind TEXT NOT NULL DEFAULT 'branch'
        CHECK (kind IN ('branch', 'baseline'));
    CREATE UNIQUE INDEX comparisons_baseline_of_run ON comparisons (run_b) WHERE kind = 'baseline';
    ALTER TABLE verdicts ADD COLUMN method TEXT NOT NULL DEFAULT 'history'
        CHECK (method IN ('history', 'paired', 'count'));
    UPDATE verdicts SET method = 'count' WHERE metric IN ('client_instructions', 'server_instructions');
    ALTER TABLE calibrations ADD COLUMN kind TEXT NOT NULL DEFAULT 'history'
        CHECK (kind IN ('history', 'paired', 'injected'));
    ALTER TABLE calibrations ADD COLUMN injected TEXT;
    ";

// 8: a scenario says whether its rounds run for a fixed time instead of a fixed amount of work:
// what such rounds accumulate follows their throughput and is not judged. Until now only
// `server.load` ran for a time (its `duration_s` is optional, with a default).
const V8: &str = "
    ALTER TABLE scenarios ADD COLUMN fixed_duration INTEGER NOT NULL DEFAULT 0 CHECK (fixed_duration IN (0, 1));
    UPDATE scenarios SET fixed_duration = 1
     WHERE workload = 'server.load' OR json_extract(params, '$.duration_s') IS NOT NULL;
    ";

// 9: a calibration may measure the history and count rules against a known injected cost
// (`injected-history`). The CHECK on `kind` is rebuilt as V3 rebuilt `purpose`.
const V9: &str = "
    ALTER TABLE calibrations RENAME COLUMN kind TO kind_v8;
    ALTER TABLE calibrations ADD COLUMN kind TEXT NOT NULL DEFAULT 'history'
        CHECK (kind IN ('history', 'paired', 'injected', 'injected-history'));
    UPDATE calibrations SET kind = kind_v8;
    ALTER TABLE calibrations DROP COLUMN kind_v8;
    ";
