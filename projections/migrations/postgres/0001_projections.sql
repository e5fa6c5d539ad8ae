-- Read models of the projections crate. They live in the log's database but are tracked by
-- their own migrations table (`_projections_migrations`), so the store's migrator and this one
-- never see each other's versions.

-- Where each projection has applied the log up to (inclusive), written in the same
-- transaction as the read model it describes.
CREATE TABLE projection_checkpoints (
    name          TEXT   PRIMARY KEY,
    position      BIGINT NOT NULL CHECK (position >= 0),
    updated_at_ms BIGINT NOT NULL
);

-- Task view: one row per task; `search` is the full-text vector of the description.
CREATE TABLE projection_tasks (
    task_id         TEXT   PRIMARY KEY,
    status          TEXT   NOT NULL,
    capability      TEXT   NOT NULL,
    description     TEXT   NOT NULL,
    submitter       TEXT   NOT NULL,
    agent_id        TEXT,
    attempt         BIGINT NOT NULL,
    submitted_at_ms BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    end_reason      TEXT,
    last_position   BIGINT NOT NULL,
    search          TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', description)) STORED
);
CREATE INDEX projection_tasks_submitted ON projection_tasks (submitted_at_ms);
CREATE INDEX projection_tasks_status ON projection_tasks (status, submitted_at_ms);
CREATE INDEX projection_tasks_capability ON projection_tasks (capability, submitted_at_ms);
CREATE INDEX projection_tasks_agent ON projection_tasks (agent_id, submitted_at_ms);
CREATE INDEX projection_tasks_submitter ON projection_tasks (submitter, submitted_at_ms);
CREATE INDEX projection_tasks_search ON projection_tasks USING GIN (search);

-- Reputation per agent and capability (see the reputation module's docs for the formula).
CREATE TABLE projection_reputation (
    agent_id              TEXT             NOT NULL,
    capability            TEXT             NOT NULL,
    success_weight        DOUBLE PRECISION NOT NULL,
    failure_weight        DOUBLE PRECISION NOT NULL,
    decayed_at_ms         BIGINT           NOT NULL,
    successes             BIGINT           NOT NULL,
    failures_agent        BIGINT           NOT NULL,
    failures_timeout      BIGINT           NOT NULL,
    failures_transport    BIGINT           NOT NULL,
    failures_verification BIGINT           NOT NULL,
    task_errors           BIGINT           NOT NULL,
    latency_ms_ewma       DOUBLE PRECISION,
    quality_ewma          DOUBLE PRECISION,
    PRIMARY KEY (agent_id, capability)
);
CREATE TABLE projection_reputation_tasks (
    task_id          TEXT   PRIMARY KEY,
    capability       TEXT   NOT NULL,
    attempt_start_ms BIGINT,
    result_latency_ms BIGINT
);

-- Health per agent.
CREATE TABLE projection_health (
    agent_id             TEXT             PRIMARY KEY,
    success_target       DOUBLE PRECISION NOT NULL,
    latency_ms_slo       BIGINT           NOT NULL,
    last_heartbeat_ms    BIGINT,
    error_rate_ewma      DOUBLE PRECISION NOT NULL,
    latency_ms_ewma      DOUBLE PRECISION,
    consecutive_failures BIGINT           NOT NULL,
    state                TEXT             NOT NULL,
    state_since_ms       BIGINT           NOT NULL,
    trial_task_id        TEXT,
    updated_at_ms        BIGINT           NOT NULL
);
CREATE TABLE projection_health_tasks (
    task_id          TEXT   PRIMARY KEY,
    capability       TEXT   NOT NULL,
    attempt_start_ms BIGINT,
    result_latency_ms BIGINT
);
-- SLO outcomes in one-minute buckets: (agent, '*') per agent, ('*', capability) per capability.
CREATE TABLE projection_slo_buckets (
    agent_id        TEXT   NOT NULL,
    capability      TEXT   NOT NULL,
    bucket_start_ms BIGINT NOT NULL,
    good            BIGINT NOT NULL,
    bad             BIGINT NOT NULL,
    PRIMARY KEY (agent_id, capability, bucket_start_ms)
);

-- The audit ledger: one entry per audited event, hash-chained; `entry_hash` is also the
-- entry's RFC 6962 leaf hash.
CREATE TABLE audit_entries (
    seq            BIGINT PRIMARY KEY,
    position       BIGINT NOT NULL,
    event_id       TEXT   NOT NULL,
    actor          TEXT   NOT NULL,
    resource       TEXT   NOT NULL,
    operation      TEXT   NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    justification  TEXT,
    event_hash     BYTEA  NOT NULL,
    prev_hash      BYTEA  NOT NULL,
    entry_hash     BYTEA  NOT NULL
);
-- Signed tree heads (the ledger's checkpoints): ed25519 over size, timestamp and Merkle root.
CREATE TABLE audit_tree_heads (
    tree_size    BIGINT PRIMARY KEY,
    timestamp_ms BIGINT NOT NULL,
    root_hash    BYTEA  NOT NULL,
    public_key   BYTEA  NOT NULL,
    signature    BYTEA  NOT NULL
);
-- The writer's running state: size, last entry hash and the Merkle frontier (not trusted by
-- the verifier, which recomputes everything).
CREATE TABLE audit_writer_state (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    tree_size BIGINT NOT NULL,
    last_hash BYTEA  NOT NULL,
    frontier  BYTEA  NOT NULL
);
