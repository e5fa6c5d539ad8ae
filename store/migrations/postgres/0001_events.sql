-- The event log: one row per recorded event. `position` is the global order; appends take a
-- transaction-scoped advisory lock, so positions become visible in increasing order and a
-- subscriber reading "everything after N" never skips a late-committing lower position.
CREATE TABLE events (
    position       BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    version        BIGINT      NOT NULL CHECK (version >= 1),
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        BYTEA       NOT NULL,
    metadata       JSONB       NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);

-- Durable subscriptions: every matching event at or below `checkpoint` was acknowledged.
CREATE TABLE subscriptions (
    name       TEXT        PRIMARY KEY,
    checkpoint BIGINT      NOT NULL CHECK (checkpoint >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
