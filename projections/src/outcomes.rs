//! What reputation and health both learn from a task's events: the outcome of each attempt —
//! by which agent, for which capability, how it ended, how long it took — and quality ratings.
//!
//! A task's capability is in its submission and an attempt's start in its selection or
//! execution start, so each projection keeps a small table of running tasks (its own, so each
//! can be rebuilt alone); a task's row is deleted when the task ends.

use std::collections::HashMap;

use events::signals::FeedbackEvent;
use events::task::FailureCause;
use events::{DomainEvent, RecordedEvent, TaskEvent};
use tracing::warn;

use crate::Result;
use crate::db::{Tx, execute, fetch};

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum OutcomeKind {
    /// The result verified.
    Success,
    /// The attempt failed, for this cause.
    Failure(FailureCause),
    /// The agent did not answer in time.
    TimedOut,
    /// Someone rated the result, 0 to 1.
    Quality(f64),
}

/// One attempt's outcome.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    /// The task (none for a quality rating).
    pub(crate) task_id: Option<String>,
    pub(crate) agent_id: String,
    pub(crate) capability: String,
    pub(crate) kind: OutcomeKind,
    /// From the attempt's start to the result (or failure), when known.
    pub(crate) latency_ms: Option<i64>,
    pub(crate) at_ms: i64,
}

/// An agent was selected for a task (health uses it to track half-open trials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) task_id: String,
    pub(crate) agent_id: String,
    pub(crate) at_ms: i64,
}

/// What a batch says, in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Happening {
    Selected(Selection),
    Ended(Outcome),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Running {
    capability: String,
    attempt_start_ms: Option<i64>,
    result_latency_ms: Option<i64>,
}

/// Reads the batch's task and feedback events into selections and outcomes, keeping the
/// running-task table `table` (`projection_reputation_tasks` or `projection_health_tasks`).
pub(crate) async fn extract(
    tx: &mut Tx,
    table: &'static str,
    events: &[RecordedEvent],
) -> Result<Vec<Happening>> {
    let relevant: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| matches!(e.stream_id.category(), "task" | "feedback"))
        .filter(|e| {
            use events::TaskEventKind as Kind;
            match e.stream_id.category() {
                "feedback" => {
                    e.event_type.as_str() == events::signals::FeedbackEventKind::QualityRated.as_str()
                }
                _ => Kind::of(e.event_type.as_str()).is_some_and(|kind| {
                    kind.is_final()
                        || matches!(
                            kind,
                            Kind::Submitted
                                | Kind::AgentSelected
                                | Kind::ExecutionStarted
                                | Kind::ResultReceived
                                | Kind::ResultVerified
                                | Kind::ExecutionFailed
                                | Kind::ExecutionTimedOut
                                | Kind::RetryScheduled
                        )
                }),
            }
        })
        .collect();
    if relevant.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = Vec::new();
    for event in relevant.iter().filter(|e| e.stream_id.category() == "task") {
        let id = event.stream_id.entity_id();
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    let mut running: HashMap<String, Option<Running>> = load(tx, table, &ids).await?;
    let mut happenings = Vec::new();
    for event in relevant {
        if event.stream_id.category() == "feedback" {
            match FeedbackEvent::from_recorded(event) {
                Ok(FeedbackEvent::QualityRated(e)) => happenings.push(Happening::Ended(Outcome {
                    task_id: None,
                    agent_id: e.agent_id.to_string(),
                    capability: e.capability,
                    kind: OutcomeKind::Quality(e.score.clamp(0.0, 1.0)),
                    latency_ms: None,
                    at_ms: event.metadata.occurred_at_ms,
                })),
                Err(error) => {
                    warn!(position = event.position, %error, "skipping an undecodable feedback event")
                }
            }
            continue;
        }
        let task_event = match TaskEvent::from_recorded(event) {
            Ok(task_event) => task_event,
            Err(error) => {
                warn!(position = event.position, %error, "skipping an undecodable task event");
                continue;
            }
        };
        let task_id = event.stream_id.entity_id().to_string();
        let at_ms = event.metadata.occurred_at_ms;
        let slot = running.entry(task_id.clone()).or_insert(None);
        if let TaskEvent::Submitted(e) = &task_event {
            *slot = Some(Running { capability: e.spec.capability.clone(), ..Running::default() });
            continue;
        }
        let Some(task) = slot.as_mut() else { continue };
        let since_start =
            |task: &Running| task.attempt_start_ms.map(|start| at_ms.saturating_sub(start).max(0));
        let mut ended = |agent_id: String, kind: OutcomeKind, latency_ms: Option<i64>, capability: &str| {
            happenings.push(Happening::Ended(Outcome {
                task_id: Some(task_id.clone()),
                agent_id,
                capability: capability.to_string(),
                kind,
                latency_ms,
                at_ms,
            }));
        };
        match task_event {
            TaskEvent::AgentSelected(e) => {
                task.attempt_start_ms = Some(at_ms);
                task.result_latency_ms = None;
                happenings.push(Happening::Selected(Selection {
                    task_id: task_id.clone(),
                    agent_id: e.agent_id.to_string(),
                    at_ms,
                }));
            }
            TaskEvent::ExecutionStarted(_) => task.attempt_start_ms = Some(at_ms),
            TaskEvent::ResultReceived(_) => task.result_latency_ms = since_start(task),
            TaskEvent::ResultVerified(e) => {
                let latency = task.result_latency_ms.or_else(|| since_start(task));
                ended(e.agent_id.to_string(), OutcomeKind::Success, latency, &task.capability);
            }
            TaskEvent::ExecutionFailed(e) => {
                let latency = since_start(task);
                ended(e.agent_id.to_string(), OutcomeKind::Failure(e.cause), latency, &task.capability);
            }
            TaskEvent::ExecutionTimedOut(e) => {
                let latency = i64::try_from(e.timeout_ms).ok();
                ended(e.agent_id.to_string(), OutcomeKind::TimedOut, latency, &task.capability);
            }
            TaskEvent::RetryScheduled(_) => {
                task.attempt_start_ms = None;
                task.result_latency_ms = None;
            }
            TaskEvent::Completed(_)
            | TaskEvent::Failed(_)
            | TaskEvent::Rejected(_)
            | TaskEvent::Cancelled(_) => {
                *slot = None;
            }
            _ => {}
        }
    }
    save(tx, table, running).await?;
    Ok(happenings)
}

async fn load(tx: &mut Tx, table: &'static str, ids: &[String]) -> Result<HashMap<String, Option<Running>>> {
    type Row = (String, String, Option<i64>, Option<i64>);
    let mut out: HashMap<String, Option<Running>> = HashMap::with_capacity(ids.len());
    let rows: Vec<Row> = match tx {
        Tx::Postgres(pg) => {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT task_id, capability, attempt_start_ms, result_latency_ms FROM {table} WHERE task_id = ANY($1)"
            ));
            sqlx::query_as::<_, Row>(sql).bind(ids.to_vec()).fetch_all(&mut **pg).await?
        }
        Tx::Sqlite(_) => {
            let mut rows = Vec::new();
            for id in ids {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT task_id, capability, attempt_start_ms, result_latency_ms FROM {table} WHERE task_id = $1"
                ));
                if let Some(row) = fetch!(&mut *tx, fetch_optional, Row, sql, id.as_str())? {
                    rows.push(row);
                }
            }
            rows
        }
    };
    for (task_id, capability, attempt_start_ms, result_latency_ms) in rows {
        out.insert(task_id, Some(Running { capability, attempt_start_ms, result_latency_ms }));
    }
    Ok(out)
}

async fn save(tx: &mut Tx, table: &'static str, running: HashMap<String, Option<Running>>) -> Result<()> {
    let mut upserts: Vec<(String, Running)> = Vec::new();
    let mut deletes: Vec<String> = Vec::new();
    for (task_id, row) in running {
        match row {
            Some(row) => upserts.push((task_id, row)),
            None => deletes.push(task_id),
        }
    }
    // A stable order keeps the writes (and their lock order) deterministic.
    upserts.sort_by(|a, b| a.0.cmp(&b.0));
    deletes.sort();
    let upsert_tail = " ON CONFLICT (task_id) DO UPDATE SET capability = excluded.capability, \
         attempt_start_ms = excluded.attempt_start_ms, result_latency_ms = excluded.result_latency_ms";
    match tx {
        Tx::Postgres(pg) => {
            if !deletes.is_empty() {
                let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE task_id = ANY($1)"));
                sqlx::query(sql).bind(deletes).execute(&mut **pg).await?;
            }
            if !upserts.is_empty() {
                let (mut id, mut capability, mut start, mut latency) = (vec![], vec![], vec![], vec![]);
                for (task_id, row) in upserts {
                    id.push(task_id);
                    capability.push(row.capability);
                    start.push(row.attempt_start_ms);
                    latency.push(row.result_latency_ms);
                }
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (task_id, capability, attempt_start_ms, result_latency_ms) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]){upsert_tail}"
                ));
                sqlx::query(sql)
                    .bind(id)
                    .bind(capability)
                    .bind(start)
                    .bind(latency)
                    .execute(&mut **pg)
                    .await?;
            }
        }
        Tx::Sqlite(_) => {
            for task_id in deletes {
                let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE task_id = $1"));
                execute!(&mut *tx, sql, task_id)?;
            }
            for (task_id, row) in upserts {
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (task_id, capability, attempt_start_ms, result_latency_ms) \
                     VALUES ($1, $2, $3, $4){upsert_tail}"
                ));
                execute!(
                    &mut *tx,
                    sql,
                    task_id,
                    row.capability,
                    row.attempt_start_ms,
                    row.result_latency_ms
                )?;
            }
        }
    }
    Ok(())
}
