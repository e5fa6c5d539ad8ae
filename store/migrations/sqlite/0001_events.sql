-- The event log: one row per recorded event. `position` is the global order (AUTOINCREMENT so a
-- position is never reused); each stream's versions run 1, 2, 3, … without gaps.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_id       TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    metadata       TEXT    NOT NULL,
    UNIQUE (stream_id, version)
);

-- Durable subscriptions: every matching event at or below `checkpoint` was acknowledged.
CREATE TABLE subscriptions (
    name       TEXT    PRIMARY KEY,
    checkpoint INTEGER NOT NULL CHECK (checkpoint >= 0)
);
