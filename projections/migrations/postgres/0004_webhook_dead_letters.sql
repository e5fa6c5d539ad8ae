-- Dead-lettered webhooks, until delivered or asked for again: what an operator lists and
-- redelivers. Part of the task view (a rebuild empties and refills it).
CREATE TABLE projection_webhook_dead (
    task_id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_lettered_at_ms BIGINT NOT NULL
);
CREATE INDEX projection_webhook_dead_by_time ON projection_webhook_dead (dead_lettered_at_ms, task_id);
