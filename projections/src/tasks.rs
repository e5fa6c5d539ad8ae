//! The task view: one row per task — status, capability, description (redacted when
//! screening redacted it), submitter, the agent of the latest attempt, times — filtered and
//! searched by `pantheon tasks` and the gateway's `GET /tasks` through [`TaskReader`].
//!
//! Full-text search runs on SQLite's FTS5 (an external-content index kept in step by
//! triggers) and on PostgreSQL's `tsvector` (a generated column with a GIN index), both with
//! the `simple` rules: words are lowercased, not stemmed; every word searched must appear.

use std::collections::HashMap;

use async_trait::async_trait;
use events::task::{FailureCode, RejectionCode};
use events::{DomainEvent, RecordedEvent, TaskEvent, TaskStatus};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::db::{Db, Tx, execute, fetch};
use crate::runner::Projection;
use crate::{Error, Result};

/// The most tasks one query returns: bounds the memory and time of a `GET /tasks` page.
pub const TASK_QUERY_LIMIT_MAX: u32 = 1_000;

/// The page size when a query names none.
pub const TASK_QUERY_LIMIT_DEFAULT: u32 = 50;

/// The longest full-text search text accepted, in bytes.
pub const TASK_SEARCH_BYTES_MAX: usize = 512;

/// The task view's projection.
pub(crate) struct TaskView;

/// One task as the view holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TaskSummary {
    /// The task.
    pub task_id: String,
    /// Where it is (`submitted`, `running`, `completed`, …).
    pub status: String,
    /// The capability asked for.
    pub capability: String,
    /// What to do (as screened: redacted when screening redacted it).
    pub description: String,
    /// Who submitted it.
    pub submitter: String,
    /// The agent of the latest attempt, if one was selected.
    pub agent_id: Option<String>,
    /// The latest attempt (0 before matching).
    pub attempt: i64,
    /// When it was submitted, ms since the epoch.
    pub submitted_at_ms: i64,
    /// When its last event happened, ms since the epoch.
    pub updated_at_ms: i64,
    /// Why it ended without a result, if it did.
    pub end_reason: Option<String>,
    /// The log position of its last event.
    pub last_position: i64,
}

/// Which tasks to list: every field narrows; newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskQuery {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks for this capability.
    pub capability: Option<String>,
    /// Only tasks whose latest attempt went to this agent.
    pub agent_id: Option<String>,
    /// Only tasks from this submitter.
    pub submitter: Option<String>,
    /// Only tasks submitted at or after this time (ms since the epoch).
    pub submitted_from_ms: Option<i64>,
    /// Only tasks submitted before this time (ms since the epoch).
    pub submitted_until_ms: Option<i64>,
    /// Only tasks whose description holds every word of this text.
    pub search: Option<String>,
    /// The page size (default [`TASK_QUERY_LIMIT_DEFAULT`], at most [`TASK_QUERY_LIMIT_MAX`]).
    pub limit: Option<u32>,
    /// Tasks to skip (for the next page).
    pub offset: u64,
    /// Only tasks after this one in the listing order (older, or as old with a smaller id):
    /// the next page after a page that ended there, stable while new tasks arrive.
    pub after: Option<TaskCursor>,
}

/// A place in the listing order (newest first): the last task of a page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCursor {
    /// The task's submission time, ms since the epoch.
    pub submitted_at_ms: i64,
    /// The task.
    pub task_id: String,
}

impl TaskCursor {
    /// Where a page ending with `task` ends.
    pub fn of(task: &TaskSummary) -> Self {
        Self { submitted_at_ms: task.submitted_at_ms, task_id: task.task_id.clone() }
    }
}

impl std::fmt::Display for TaskCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.submitted_at_ms, self.task_id)
    }
}

/// The shape of a task cursor, as a regular expression: `<submitted_at_ms>_<task_id>` (at most
/// 18 digits, an optional sign; 1 to 64 letters, digits and dashes).
pub const TASK_CURSOR_PATTERN: &str = "^[+-]?[0-9]{1,18}_[0-9A-Za-z-]{1,64}$";

impl std::str::FromStr for TaskCursor {
    type Err = Error;

    /// Reads what [`Display`](std::fmt::Display) wrote: `<submitted_at_ms>_<task_id>`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidQuery { reason: format!("{text:?} is not a task cursor") };
        // The shape is exactly [`TASK_CURSOR_PATTERN`]'s.
        let (ms, task_id) = text.split_once('_').ok_or_else(invalid)?;
        let digits = ms.strip_prefix(['+', '-']).unwrap_or(ms);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let submitted_at_ms = ms.parse().map_err(|_| invalid())?;
        if task_id.is_empty()
            || task_id.len() > 64
            || !task_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid());
        }
        Ok(Self { submitted_at_ms, task_id: task_id.to_string() })
    }
}

/// The statuses in which a task occupies its agent: chosen, sealed for it, or running on it.
pub const STATUSES_ON_AGENT: [TaskStatus; 3] =
    [TaskStatus::AgentSelected, TaskStatus::Sealed, TaskStatus::Running];

/// Reads the task view.
#[derive(Clone, Debug)]
pub struct TaskReader {
    db: Db,
}

enum Arg {
    Text(String),
    Int(i64),
}

const SELECT_TASK: &str = "SELECT task_id, status, capability, description, submitter, agent_id, attempt, \
     submitted_at_ms, updated_at_ms, end_reason, last_position FROM projection_tasks";

impl TaskReader {
    /// A reader over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// One task.
    pub async fn get(&self, task_id: &str) -> Result<Option<TaskSummary>> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT_TASK} WHERE task_id = $1"));
        Ok(crate::db::read!(&self.db, fetch_optional, TaskSummary, sql, task_id)?)
    }

    /// Unfinished tasks (any status but completed, failed, rejected, cancelled), oldest
    /// submitted first, after `after` (a page's last task, as `(submitted_at_ms, task_id)`),
    /// submitted before `submitted_before_ms`; at most `limit` (≤ [`TASK_QUERY_LIMIT_MAX`]).
    /// What the deadline sweeper walks through.
    pub async fn unfinished(
        &self,
        after: Option<&TaskCursor>,
        submitted_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<TaskSummary>> {
        let limit = limit.clamp(1, TASK_QUERY_LIMIT_MAX);
        let (after_ms, after_id) =
            after.map_or((i64::MIN, String::new()), |c| (c.submitted_at_ms, c.task_id.clone()));
        let sql = sqlx::AssertSqlSafe(format!(
            "{SELECT_TASK} WHERE status NOT IN ('completed', 'failed', 'rejected', 'cancelled') \
             AND submitted_at_ms < $1 AND (submitted_at_ms > $2 OR (submitted_at_ms = $2 AND task_id > $3)) \
             ORDER BY submitted_at_ms, task_id LIMIT {limit}"
        ));
        Ok(crate::db::read!(&self.db, fetch_all, TaskSummary, sql, submitted_before_ms, after_ms, after_id)?)
    }

    /// The tasks matching `query`, newest first, one page.
    pub async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskSummary>> {
        let limit = query.limit.unwrap_or(TASK_QUERY_LIMIT_DEFAULT);
        if limit == 0 || limit > TASK_QUERY_LIMIT_MAX {
            return Err(Error::InvalidQuery {
                reason: format!("limit must be 1 to {TASK_QUERY_LIMIT_MAX}, not {limit}"),
            });
        }
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let mut push = |condition: &str, arg: Arg, args: &mut Vec<Arg>| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        if let Some(status) = query.status {
            push("status = ?", Arg::Text(status.as_str().to_string()), &mut args);
        }
        if let Some(capability) = &query.capability {
            push("capability = ?", Arg::Text(capability.clone()), &mut args);
        }
        if let Some(agent) = &query.agent_id {
            push("agent_id = ?", Arg::Text(agent.clone()), &mut args);
        }
        if let Some(submitter) = &query.submitter {
            push("submitter = ?", Arg::Text(submitter.clone()), &mut args);
        }
        if let Some(from) = query.submitted_from_ms {
            push("submitted_at_ms >= ?", Arg::Int(from), &mut args);
        }
        if let Some(until) = query.submitted_until_ms {
            push("submitted_at_ms < ?", Arg::Int(until), &mut args);
        }
        if let Some(search) = &query.search {
            if search.len() > TASK_SEARCH_BYTES_MAX {
                return Err(Error::InvalidQuery {
                    reason: format!("the search text is over {TASK_SEARCH_BYTES_MAX} bytes"),
                });
            }
            let words: Vec<&str> =
                search.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
            if words.is_empty() {
                return Err(Error::InvalidQuery { reason: "the search text has no words".into() });
            }
            match &self.db {
                Db::Sqlite { .. } => {
                    // Each word quoted: FTS5 query syntax (NEAR, *, -, …) in user input is
                    // taken literally, never parsed.
                    let fts = words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ");
                    push(
                        "seq IN (SELECT rowid FROM projection_task_search WHERE projection_task_search MATCH ?)",
                        Arg::Text(fts),
                        &mut args,
                    );
                }
                Db::Postgres(_) => {
                    push("search @@ plainto_tsquery('simple', ?)", Arg::Text(words.join(" ")), &mut args);
                }
            }
        }
        // After the closure above: it borrows `conditions` until its last use.
        if let Some(after) = &query.after {
            args.push(Arg::Int(after.submitted_at_ms));
            args.push(Arg::Text(after.task_id.clone()));
            let (ms, id) = (args.len() - 1, args.len());
            conditions
                .push(format!("(submitted_at_ms < ${ms} OR (submitted_at_ms = ${ms} AND task_id < ${id}))"));
        }
        let mut sql = SELECT_TASK.to_string();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY submitted_at_ms DESC, task_id DESC LIMIT {limit} OFFSET {}",
            query.offset.min(i64::MAX as u64)
        ));
        let rows = match &self.db {
            Db::Sqlite { readers, .. } => {
                let mut q = sqlx::query_as::<_, TaskSummary>(sqlx::AssertSqlSafe(sql));
                for arg in args {
                    q = match arg {
                        Arg::Text(s) => q.bind(s),
                        Arg::Int(i) => q.bind(i),
                    };
                }
                q.fetch_all(readers).await?
            }
            Db::Postgres(pool) => {
                let mut q = sqlx::query_as::<_, TaskSummary>(sqlx::AssertSqlSafe(sql));
                for arg in args {
                    q = match arg {
                        Arg::Text(s) => q.bind(s),
                        Arg::Int(i) => q.bind(i),
                    };
                }
                q.fetch_all(pool).await?
            }
        };
        Ok(rows)
    }

    /// The dead-lettered webhooks not delivered or asked for again, newest first, at most
    /// `limit`.
    pub async fn dead_webhooks(&self, limit: u32) -> Result<Vec<DeadWebhook>> {
        Ok(crate::db::read!(
            &self.db,
            fetch_all,
            DeadWebhook,
            "SELECT task_id, webhook_id, reason, dead_lettered_at_ms FROM projection_webhook_dead \
             ORDER BY dead_lettered_at_ms DESC, task_id DESC LIMIT $1",
            i64::from(limit)
        )?)
    }

    /// How many tasks each agent holds now ([`STATUSES_ON_AGENT`]), by agent id; agents
    /// holding none are absent.
    pub async fn load_by_agent(&self) -> Result<HashMap<String, i64>> {
        let statuses = STATUSES_ON_AGENT.map(|s| format!("'{}'", s.as_str())).join(", ");
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT agent_id, COUNT(*) FROM projection_tasks \
             WHERE agent_id IS NOT NULL AND status IN ({statuses}) GROUP BY agent_id"
        ));
        let rows: Vec<(String, i64)> = crate::db::read!(&self.db, fetch_all, (String, i64), sql)?;
        Ok(rows.into_iter().collect())
    }
}

/// What an event does to a task's row: the status the event kind moves a task to
/// ([`events::TaskEventKind::status_after`], the fold's own map), and the columns it sets.
fn fold(row: &mut TaskSummary, event: &TaskEvent) {
    // Progress and webhook deliveries leave the row as it is.
    let Some(status) = event.kind().status_after() else { return };
    match event {
        TaskEvent::IngressScreened(e) => {
            if let Some(redacted) = &e.redacted_description {
                row.description = redacted.clone();
            }
        }
        TaskEvent::Rejected(e) => row.end_reason = Some(format!("{}: {}", rejection_code(e.code), e.reason)),
        TaskEvent::ContextGathered(_) => row.attempt = row.attempt.max(1),
        TaskEvent::AgentSelected(e) => {
            row.agent_id = Some(e.agent_id.to_string());
            row.attempt = i64::from(e.attempt);
        }
        TaskEvent::RetryScheduled(e) => row.attempt = i64::from(e.attempt),
        TaskEvent::Completed(e) => row.agent_id = Some(e.agent_id.to_string()),
        TaskEvent::Failed(e) => row.end_reason = Some(format!("{}: {}", failure_code(e.code), e.reason)),
        TaskEvent::Cancelled(e) => {
            row.end_reason =
                Some(if e.reason.is_empty() { format!("cancelled by {}", e.by) } else { e.reason.clone() });
        }
        _ => {}
    }
    row.status = status.as_str().to_string();
}

fn rejection_code(code: RejectionCode) -> &'static str {
    match code {
        RejectionCode::InvalidSubmission => "invalid_submission",
        RejectionCode::UnknownCapability => "unknown_capability",
        RejectionCode::Unauthenticated => "unauthenticated",
        RejectionCode::Blocked => "blocked",
    }
}

fn failure_code(code: FailureCode) -> &'static str {
    match code {
        FailureCode::DeadlineExceeded => "deadline_exceeded",
        FailureCode::AttemptsExhausted => "attempts_exhausted",
        FailureCode::NoAgent => "no_agent",
        FailureCode::VerificationFailed => "verification_failed",
        FailureCode::ResultWithheld => "result_withheld",
        FailureCode::TaskError => "task_error",
        FailureCode::Internal => "internal",
    }
}

/// Decodes the task events of a batch, skipping (and logging) any that do not decode.
pub(crate) fn task_events(events: &[RecordedEvent]) -> Vec<(&RecordedEvent, TaskEvent)> {
    events
        .iter()
        .filter(|e| e.stream_id.category() == TaskEvent::CATEGORY)
        .filter_map(|e| match TaskEvent::from_recorded(e) {
            Ok(decoded) => Some((e, decoded)),
            Err(error) => {
                warn!(position = e.position, %error, "skipping an undecodable task event");
                None
            }
        })
        .collect()
}

#[async_trait]
impl Projection for TaskView {
    fn tables(&self) -> &'static [&'static str] {
        &["projection_webhook_dead", "projection_tasks"]
    }

    fn digest_queries(&self, _postgres: bool) -> &'static [&'static str] {
        &["SELECT task_id || '|' || status || '|' || capability || '|' || description || '|' || submitter \
           || '|' || COALESCE(agent_id, '-') || '|' || CAST(attempt AS TEXT) || '|' \
           || CAST(submitted_at_ms AS TEXT) || '|' || CAST(updated_at_ms AS TEXT) || '|' \
           || COALESCE(end_reason, '-') || '|' || CAST(last_position AS TEXT) \
           FROM projection_tasks ORDER BY task_id"]
    }

    async fn apply(&mut self, tx: &mut Tx, events: &[RecordedEvent]) -> Result<()> {
        let decoded = task_events(events);
        if decoded.is_empty() {
            return Ok(());
        }
        // Rows touched by this batch: load the ones that exist, fold, write back.
        let mut order: Vec<String> = Vec::new();
        let mut rows: HashMap<String, Option<TaskSummary>> = HashMap::new();
        for (event, _) in &decoded {
            let id = event.stream_id.entity_id();
            if !rows.contains_key(id) {
                rows.insert(id.to_string(), None);
                order.push(id.to_string());
            }
        }
        load_rows(tx, &order, &mut rows).await?;
        for (event, task_event) in &decoded {
            let Some(slot) = rows.get_mut(event.stream_id.entity_id()) else { continue };
            if let TaskEvent::Submitted(e) = task_event
                && slot.is_none()
            {
                *slot = Some(TaskSummary {
                    task_id: event.stream_id.entity_id().to_string(),
                    status: String::new(),
                    capability: e.spec.capability.clone(),
                    description: e.spec.description.clone(),
                    submitter: e.spec.submitter.clone(),
                    agent_id: None,
                    attempt: 0,
                    submitted_at_ms: event.metadata.occurred_at_ms,
                    updated_at_ms: event.metadata.occurred_at_ms,
                    end_reason: None,
                    last_position: 0,
                });
            }
            let Some(row) = slot.as_mut() else {
                warn!(position = event.position, stream = %event.stream_id, "task event before its submission; skipped");
                continue;
            };
            fold(row, task_event);
            row.updated_at_ms = event.metadata.occurred_at_ms;
            row.last_position = crate::db::to_i64(event.position);
        }
        let changed: Vec<TaskSummary> = order.iter().filter_map(|id| rows.remove(id).flatten()).collect();
        write_rows(tx, changed).await?;
        apply_dead_letters(tx, &decoded).await
    }
}

/// Keeps the dead-letter table: a row per task whose webhook was given up, until it is
/// delivered or asked for again.
async fn apply_dead_letters(tx: &mut Tx, decoded: &[(&RecordedEvent, TaskEvent)]) -> Result<()> {
    for (event, task_event) in decoded {
        let task_id = event.stream_id.entity_id();
        match task_event {
            TaskEvent::WebhookAttempted(e) if e.delivered => {
                execute!(&mut *tx, "DELETE FROM projection_webhook_dead WHERE task_id = $1", task_id)?;
            }
            TaskEvent::WebhookDeadLettered(e) => {
                execute!(
                    &mut *tx,
                    "INSERT INTO projection_webhook_dead (task_id, webhook_id, reason, dead_lettered_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (task_id) DO UPDATE SET webhook_id = excluded.webhook_id, \
                     reason = excluded.reason, dead_lettered_at_ms = excluded.dead_lettered_at_ms",
                    task_id,
                    e.webhook_id.as_str(),
                    e.reason.as_str(),
                    event.metadata.occurred_at_ms
                )?;
            }
            TaskEvent::WebhookRedeliveryRequested(_) => {
                execute!(&mut *tx, "DELETE FROM projection_webhook_dead WHERE task_id = $1", task_id)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A webhook given up, as the dead-letter list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeadWebhook {
    /// The task.
    pub task_id: String,
    /// The webhook message id (`webhook-id`).
    pub webhook_id: String,
    /// Why it was given up (with the number of attempts).
    pub reason: String,
    /// When it was given up, ms since the epoch.
    pub dead_lettered_at_ms: i64,
}

async fn load_rows(
    tx: &mut Tx,
    ids: &[String],
    rows: &mut HashMap<String, Option<TaskSummary>>,
) -> Result<()> {
    let found: Vec<TaskSummary> = match tx {
        Tx::Postgres(pg) => {
            let sql = sqlx::AssertSqlSafe(format!("{SELECT_TASK} WHERE task_id = ANY($1)"));
            sqlx::query_as::<_, TaskSummary>(sql).bind(ids.to_vec()).fetch_all(&mut **pg).await?
        }
        Tx::Sqlite(_) => {
            let mut found = Vec::new();
            for id in ids {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT_TASK} WHERE task_id = $1"));
                if let Some(row) = fetch!(&mut *tx, fetch_optional, TaskSummary, sql, id.as_str())? {
                    found.push(row);
                }
            }
            found
        }
    };
    for row in found {
        rows.insert(row.task_id.clone(), Some(row));
    }
    Ok(())
}

const UPSERT_SET: &str = " ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, \
     description = excluded.description, agent_id = excluded.agent_id, attempt = excluded.attempt, \
     updated_at_ms = excluded.updated_at_ms, end_reason = excluded.end_reason, \
     last_position = excluded.last_position";

const INSERT_COLUMNS: &str = "INSERT INTO projection_tasks (task_id, status, capability, description, submitter, \
     agent_id, attempt, submitted_at_ms, updated_at_ms, end_reason, last_position)";

async fn write_rows(tx: &mut Tx, rows: Vec<TaskSummary>) -> Result<()> {
    match tx {
        Tx::Postgres(pg) => {
            // One statement for the whole batch: arrays unnested server-side.
            let mut columns = PgColumns::default();
            for row in rows {
                columns.push(row);
            }
            let sql = sqlx::AssertSqlSafe(format!(
                "{INSERT_COLUMNS} SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[]){UPSERT_SET}"
            ));
            sqlx::query(sql)
                .bind(columns.task_id)
                .bind(columns.status)
                .bind(columns.capability)
                .bind(columns.description)
                .bind(columns.submitter)
                .bind(columns.agent_id)
                .bind(columns.attempt)
                .bind(columns.submitted_at_ms)
                .bind(columns.updated_at_ms)
                .bind(columns.end_reason)
                .bind(columns.last_position)
                .execute(&mut **pg)
                .await?;
        }
        Tx::Sqlite(_) => {
            // In-process statements are cheap: one prepared upsert per row.
            for row in rows {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{INSERT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11){UPSERT_SET}"
                ));
                execute!(
                    &mut *tx,
                    sql,
                    row.task_id,
                    row.status,
                    row.capability,
                    row.description,
                    row.submitter,
                    row.agent_id,
                    row.attempt,
                    row.submitted_at_ms,
                    row.updated_at_ms,
                    row.end_reason,
                    row.last_position
                )?;
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct PgColumns {
    task_id: Vec<String>,
    status: Vec<String>,
    capability: Vec<String>,
    description: Vec<String>,
    submitter: Vec<String>,
    agent_id: Vec<Option<String>>,
    attempt: Vec<i64>,
    submitted_at_ms: Vec<i64>,
    updated_at_ms: Vec<i64>,
    end_reason: Vec<Option<String>>,
    last_position: Vec<i64>,
}

impl PgColumns {
    fn push(&mut self, row: TaskSummary) {
        self.task_id.push(row.task_id);
        self.status.push(row.status);
        self.capability.push(row.capability);
        self.description.push(row.description);
        self.submitter.push(row.submitter);
        self.agent_id.push(row.agent_id);
        self.attempt.push(row.attempt);
        self.submitted_at_ms.push(row.submitted_at_ms);
        self.updated_at_ms.push(row.updated_at_ms);
        self.end_reason.push(row.end_reason);
        self.last_position.push(row.last_position);
    }
}
