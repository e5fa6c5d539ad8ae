//! Workflow timers outside the log (`workflow_timers`): each timer a run set and that has not
//! fired, in the read models' database, so every process of a federation sees them and a
//! restart loses none. The engine adds a row when it takes a `timer_set`, reads the due ones,
//! records `timer_fired` on the run (decided once) and deletes the row.

use crate::Result;
use crate::db::{Db, execute, read};

/// A timer due, or to be.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkflowTimer {
    /// The run.
    pub run_id: String,
    /// The timer's name in the run.
    pub timer: String,
    /// When it fires, ms since the epoch.
    pub fire_at_ms: i64,
}

/// The table.
#[derive(Clone, Debug)]
pub struct TimerTable {
    db: Db,
}

impl TimerTable {
    /// The table of `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Adds a timer (the same one again changes nothing).
    pub async fn set(&self, run_id: &str, timer: &str, fire_at_ms: i64) -> Result<()> {
        let mut tx = self.db.begin().await?;
        execute!(
            &mut tx,
            "INSERT INTO workflow_timers (run_id, timer, fire_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, timer) DO NOTHING",
            run_id,
            timer,
            fire_at_ms
        )?;
        tx.commit().await
    }

    /// The timers due at `now_ms`, earliest first, at most `limit`.
    pub async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<WorkflowTimer>> {
        Ok(read!(
            &self.db,
            fetch_all,
            WorkflowTimer,
            "SELECT run_id, timer, fire_at_ms FROM workflow_timers WHERE fire_at_ms <= $1 \
             ORDER BY fire_at_ms LIMIT $2",
            now_ms,
            limit
        )?)
    }

    /// Removes a timer that fired.
    pub async fn remove(&self, run_id: &str, timer: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        execute!(&mut tx, "DELETE FROM workflow_timers WHERE run_id = $1 AND timer = $2", run_id, timer)?;
        tx.commit().await
    }
}
