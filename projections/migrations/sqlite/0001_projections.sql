-- Read models of the projections crate. They live in the log's database but are tracked by
-- their own migrations table (`_projections_migrations`), so the store's migrator and this one
-- never see each other's versions.

-- Where each projection has applied the log up to (inclusive), written in the same
-- transaction as the read model it describes.
CREATE TABLE projection_checkpoints (
    name          TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL CHECK (position >= 0),
    updated_at_ms INTEGER NOT NULL
);

-- Task view: one row per task. `seq` is the rowid the full-text index refers to.
CREATE TABLE projection_tasks (
    seq             INTEGER PRIMARY KEY,
    task_id         TEXT    NOT NULL UNIQUE,
    status          TEXT    NOT NULL,
    capability      TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    submitter       TEXT    NOT NULL,
    agent_id        TEXT,
    attempt         INTEGER NOT NULL,
    submitted_at_ms INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    end_reason      TEXT,
    last_position   INTEGER NOT NULL
);
CREATE INDEX projection_tasks_submitted ON projection_tasks (submitted_at_ms);
CREATE INDEX projection_tasks_status ON projection_tasks (status, submitted_at_ms);
CREATE INDEX projection_tasks_capability ON projection_tasks (capability, submitted_at_ms);
CREATE INDEX projection_tasks_agent ON projection_tasks (agent_id, submitted_at_ms);
CREATE INDEX projection_tasks_submitter ON projection_tasks (submitter, submitted_at_ms);

-- Full-text search on descriptions (FTS5, external content kept in step by triggers).
CREATE VIRTUAL TABLE projection_task_search USING fts5(
    description, content = 'projection_tasks', content_rowid = 'seq', tokenize = 'unicode61'
);
CREATE TRIGGER projection_tasks_search_insert AFTER INSERT ON projection_tasks BEGIN
    INSERT INTO projection_task_search (rowid, description) VALUES (new.seq, new.description);
END;
CREATE TRIGGER projection_tasks_search_update AFTER UPDATE OF description ON projection_tasks
WHEN old.description IS NOT new.description BEGIN
    INSERT INTO projection_task_search (projection_task_search, rowid, description)
        VALUES ('delete', old.seq, old.description);
    INSERT INTO projection_task_search (rowid, description) VALUES (new.seq, new.description);
END;
CREATE TRIGGER projection_tasks_search_delete AFTER DELETE ON projection_tasks BEGIN
    INSERT INTO projection_task_search (projection_task_search, rowid, description)
        VALUES ('delete', old.seq, old.description);
END;

-- Reputation per agent and capability (see the reputation module's docs for the formula).
CREATE TABLE projection_reputation (
    agent_id              TEXT    NOT NULL,
    capability            TEXT    NOT NULL,
    success_weight        REAL    NOT NULL,
    failure_weight        REAL    NOT NULL,
    decayed_at_ms         INTEGER NOT NULL,
    successes             INTEGER NOT NULL,
    failures_agent        INTEGER NOT NULL,
    failures_timeout      INTEGER NOT NULL,
    failures_transport    INTEGER NOT NULL,
    failures_verification INTEGER NOT NULL,
    task_errors           INTEGER NOT NULL,
    latency_ms_ewma       REAL,
    quality_ewma          REAL,
    PRIMARY KEY (agent_id, capability)
);
-- What reputation needs to know about a running task: its capability and when the attempt began.
CREATE TABLE projection_reputation_tasks (
    task_id          TEXT    PRIMARY KEY,
    capability       TEXT    NOT NULL,
    attempt_start_ms INTEGER,
    result_latency_ms INTEGER
);

-- Health per agent.
CREATE TABLE projection_health (
    agent_id             TEXT    PRIMARY KEY,
    success_target       REAL    NOT NULL,
    latency_ms_slo       INTEGER NOT NULL,
    last_heartbeat_ms    INTEGER,
    error_rate_ewma      REAL    NOT NULL,
    latency_ms_ewma      REAL,
    consecutive_failures INTEGER NOT NULL,
    state                TEXT    NOT NULL,
    state_since_ms       INTEGER NOT NULL,
    trial_task_id        TEXT,
    updated_at_ms        INTEGER NOT NULL
);
CREATE TABLE projection_health_tasks (
    task_id          TEXT    PRIMARY KEY,
    capability       TEXT    NOT NULL,
    attempt_start_ms INTEGER,
    result_latency_ms INTEGER
);
-- SLO outcomes in one-minute buckets: (agent, '*') per agent, ('*', capability) per capability.
CREATE TABLE projection_slo_buckets (
    agent_id        TEXT    NOT NULL,
    capability      TEXT    NOT NULL,
    bucket_start_ms INTEGER NOT NULL,
    good            INTEGER NOT NULL,
    bad             INTEGER NOT NULL,
    PRIMARY KEY (agent_id, capability, bucket_start_ms)
);

-- The audit ledger: one entry per audited event, hash-chained; `entry_hash` is also the
-- entry's RFC 6962 leaf hash.
CREATE TABLE audit_entries (
    seq            INTEGER PRIMARY KEY,
    position       INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    operation      TEXT    NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    justification  TEXT,
    event_hash     BLOB    NOT NULL,
    prev_hash      BLOB    NOT NULL,
    entry_hash     BLOB    NOT NULL
);
-- Signed tree heads (the ledger's checkpoints): ed25519 over size, timestamp and Merkle root.
CREATE TABLE audit_tree_heads (
    tree_size    INTEGER PRIMARY KEY,
    timestamp_ms INTEGER NOT NULL,
    root_hash    BLOB    NOT NULL,
    public_key   BLOB    NOT NULL,
    signature    BLOB    NOT NULL
);
-- The writer's running state: size, last entry hash and the Merkle frontier (not trusted by
-- the verifier, which recomputes everything).
CREATE TABLE audit_writer_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size INTEGER NOT NULL,
    last_hash BLOB    NOT NULL,
    frontier  BLOB    NOT NULL
);
