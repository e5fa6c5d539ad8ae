-- Workflow timers outside the log: each `timer_set` of a run that has not fired yet (a retry's
-- backoff, an approval's timeout, a run's deadline). The engine of any process fires the due
-- ones (`timer_fired`, decided once on the run's stream) and deletes them. Not a projection's
-- table: a rebuild leaves it alone; a row lost is found again when its `timer_set` is
-- redelivered, and a row fired twice records one `timer_fired`.
CREATE TABLE workflow_timers (
    run_id TEXT NOT NULL,
    timer TEXT NOT NULL,
    fire_at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, timer)
);
CREATE INDEX workflow_timers_due ON workflow_timers (fire_at_ms);
