-- The deadline sweeper walks the unfinished tasks oldest first; a partial index keeps that
-- walk to the tasks in flight however long the history grows.
CREATE INDEX projection_tasks_unfinished ON projection_tasks (submitted_at_ms, task_id)
    WHERE status NOT IN ('completed', 'failed', 'rejected', 'cancelled');
