//! The runs view: one row per workflow run (its workflow and version, status, submitter,
//! start and end, steps and steps completed), listed by `GET /runs` and `pantheon workflow
//! list` through [`RunReader`], filtered by workflow name, status and submitter, in the order
//! runs started.

use async_trait::async_trait;
use events::{DomainEvent, RecordedEvent, WorkflowEvent};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::db::{Db, Tx, execute};
use crate::runner::Projection;

/// The most runs one query returns.
pub const RUN_QUERY_LIMIT_MAX: u32 = 500;

/// The runs view's projection.
pub(crate) struct RunView;

/// One run as the view holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RunSummary {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub name: String,
    /// The workflow's version.
    pub version: i64,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// Who started it.
    pub submitter: String,
    /// When it started, ms since the epoch.
    pub started_at_ms: i64,
    /// When it ended, if it did.
    pub finished_at_ms: Option<i64>,
    /// Steps in its definition.
    pub steps: i64,
    /// Steps completed.
    pub steps_done: i64,
    /// The log position of its first event: the listing order and the paging cursor.
    pub started_position: i64,
    /// The log position of its last event the view applied.
    pub last_position: i64,
}

/// Which runs to list: every field narrows; in the order they started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs of this workflow.
    pub name: Option<String>,
    /// Only runs in this status.
    pub status: Option<String>,
    /// Only runs started by this submitter.
    pub submitter: Option<String>,
    /// Only runs whose first event is at or after this log position.
    pub from_position: i64,
    /// At most this many (1 to [`RUN_QUERY_LIMIT_MAX`]).
    pub limit: u32,
}

/// Reads the runs view.
#[derive(Clone, Debug)]
pub struct RunReader {
    db: Db,
}

impl RunReader {
    /// A reader over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The runs matching `query`, in the order they started.
    pub async fn list(&self, query: &RunQuery) -> Result<Vec<RunSummary>> {
        let limit = i64::from(query.limit.clamp(1, RUN_QUERY_LIMIT_MAX));
        // Empty text matches any: one statement for every combination of filters.
        Ok(crate::db::read!(
            &self.db,
            fetch_all,
            RunSummary,
            "SELECT run_id, name, version, status, submitter, started_at_ms, finished_at_ms, steps, \
             steps_done, started_position, last_position FROM projection_runs \
             WHERE started_position >= $1 AND ($2 = '' OR name = $2) AND ($3 = '' OR status = $3) \
             AND ($4 = '' OR submitter = $4) ORDER BY started_position LIMIT $5",
            query.from_position,
            query.name.clone().unwrap_or_default(),
            query.status.clone().unwrap_or_default(),
            query.submitter.clone().unwrap_or_default(),
            limit
        )?)
    }
}

#[async_trait]
impl Projection for RunView {
    fn tables(&self) -> &'static [&'static str] {
        &["projection_runs"]
    }

    fn digest_queries(&self, _postgres: bool) -> &'static [&'static str] {
        &[
            "SELECT run_id || '|' || name || '|' || CAST(version AS TEXT) || '|' || status || '|' || submitter \
           || '|' || CAST(started_at_ms AS TEXT) || '|' || COALESCE(CAST(finished_at_ms AS TEXT), '-') \
           || '|' || CAST(steps AS TEXT) || '|' || CAST(steps_done AS TEXT) || '|' \
           || CAST(started_position AS TEXT) || '|' || CAST(last_position AS TEXT) \
           FROM projection_runs ORDER BY run_id",
        ]
    }

    async fn apply(&mut self, tx: &mut Tx, events: &[RecordedEvent]) -> Result<()> {
        for event in events {
            if event.stream_id.category() != WorkflowEvent::CATEGORY {
                continue;
            }
            let Ok(decoded) = WorkflowEvent::from_recorded(event) else { continue };
            let run_id = event.stream_id.entity_id().to_string();
            let position = crate::db::to_i64(event.position);
            let at = event.metadata.occurred_at_ms;
            let ended = |status: &'static str| (status, at);
            let end = match &decoded {
                WorkflowEvent::Started(started) => {
                    execute!(
                        tx,
                        "INSERT INTO projection_runs (run_id, name, version, status, submitter, started_at_ms, \
                         finished_at_ms, steps, steps_done, started_position, last_position) \
                         VALUES ($1, $2, $3, 'running', $4, $5, NULL, $6, 0, $7, $7) ON CONFLICT (run_id) DO NOTHING",
                        run_id.clone(),
                        started.name.clone(),
                        i64::from(started.version),
                        started.submitter.clone(),
                        if started.started_at_ms > 0 { started.started_at_ms } else { at },
                        i64::try_from(started.definition.steps.len()).unwrap_or(i64::MAX),
                        position
                    )?;
                    None
                }
                WorkflowEvent::StepCompleted(_) => {
                    execute!(
                        tx,
                        "UPDATE projection_runs SET steps_done = steps_done + 1, last_position = $2 WHERE run_id = $1",
                        run_id.clone(),
                        position
                    )?;
                    None
                }
                WorkflowEvent::Completed(_) => Some(ended("completed")),
                WorkflowEvent::Failed(_) => Some(ended("failed")),
                WorkflowEvent::Cancelled(_) => Some(ended("cancelled")),
                _ => None,
            };
            if let Some((status, finished_at_ms)) = end {
                execute!(
                    tx,
                    "UPDATE projection_runs SET status = $2, finished_at_ms = $3, last_position = $4 WHERE run_id = $1",
                    run_id,
                    status,
                    finished_at_ms,
                    position
                )?;
            }
        }
        Ok(())
    }
}
