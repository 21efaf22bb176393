//! Versioned migrations. `PRAGMA user_version` holds the number of migrations applied; each
//! runs in its own transaction. Never edit a released migration: append a new one, and
//! document the result in `collector/schema.md`.

pub const MIGRATIONS: &[&str] = &[
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
    ",
];
