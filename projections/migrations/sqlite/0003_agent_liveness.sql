-- Liveness outside the log: the last heartbeat of each agent, overwritten in place. A beat
-- every few seconds per agent made up a third of an idle federation's history; the log now
-- records only changes (`agent_liveness_changed`), and `recorded` is the last one recorded.
-- Not a projection's table: a rebuild leaves it alone.
CREATE TABLE agent_liveness (
    agent_id TEXT PRIMARY KEY,
    last_seen_ms BIGINT NOT NULL,
    tasks_in_flight BIGINT NOT NULL,
    recorded TEXT
);
