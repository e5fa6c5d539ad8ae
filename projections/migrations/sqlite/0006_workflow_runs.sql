-- The runs view: one row per workflow run — its workflow, status, submitter, times and step
-- counts — for `GET /runs` and `pantheon workflow list`, filtered by name and status without
-- reading the log. A projection's table: a rebuild empties and refills it.
CREATE TABLE projection_runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    submitter TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    steps BIGINT NOT NULL,
    steps_done BIGINT NOT NULL,
    started_position BIGINT NOT NULL,
    last_position BIGINT NOT NULL
);
CREATE INDEX projection_runs_order ON projection_runs (started_position);
CREATE INDEX projection_runs_by_name ON projection_runs (name, started_position);
CREATE INDEX projection_runs_by_status ON projection_runs (status, started_position);
