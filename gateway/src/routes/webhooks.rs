//! `/webhooks/dead`: the webhooks given up after their attempts (from the task view's
//! dead-letter table), and `POST /webhooks/dead/{id}/redeliver`, which records an operator's
//! `webhook_redelivery_requested` on the task; the dispatcher then makes a new round of
//! attempts with the same `webhook-id`. Listing takes `read_all`, redelivering
//! `manage_webhooks` (operators and admins).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use events::commands::RedeliverError;
use events::{ExpectedVersion, LogError, StreamId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::{Permission, Principal};
use crate::config::in_range;
use crate::error::{Error, Result};
use crate::extract::{IdPath, QueryParams};
use crate::routes::tasks::readable_task;
use crate::state::AppState;

/// The most dead letters one answer lists.
pub const DEAD_WEBHOOKS_PAGE_COUNT_MAX: usize = 500;

/// Conflicting appends a redelivery request re-reads and re-decides for, at most.
const REDELIVER_ATTEMPT_COUNT_MAX: usize = 8;

/// The query of `GET /webhooks/dead`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// How many, newest first (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A dead-lettered webhook.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeadWebhookView {
    /// The task.
    pub task_id: String,
    /// The webhook message id (`webhook-id`).
    pub webhook_id: String,
    /// Why it was given up.
    pub reason: String,
    /// When, ms since the epoch.
    pub dead_lettered_at_ms: i64,
}

/// The dead letters, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeadWebhooks {
    /// The webhooks given up and not asked for again.
    pub dead: Vec<DeadWebhookView>,
}

/// A redelivery recorded.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Redelivery {
    /// The task.
    pub task_id: String,
    /// The webhook message id, the same as before.
    pub webhook_id: String,
    /// Who asked.
    pub requested_by: String,
}

/// `GET /webhooks/dead`.
pub(crate) async fn dead(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    QueryParams(query): QueryParams<DeadQuery>,
) -> Result<axum::Json<DeadWebhooks>> {
    principal.require(Permission::ReadAll)?;
    let read = state.read_models("the dead-lettered webhooks")?;
    let limit = in_range("limit", query.limit, 1, DEAD_WEBHOOKS_PAGE_COUNT_MAX)?.unwrap_or(100);
    let rows = read.tasks.dead_webhooks(u32::try_from(limit).unwrap_or(u32::MAX)).await?;
    let dead = rows
        .into_iter()
        .map(|row| DeadWebhookView {
            task_id: row.task_id,
            webhook_id: row.webhook_id,
            reason: row.reason,
            dead_lettered_at_ms: row.dead_lettered_at_ms,
        })
        .collect();
    Ok(axum::Json(DeadWebhooks { dead }))
}

/// `POST /webhooks/dead/{id}/redeliver`: 202 once recorded; 409 when the task's webhook is
/// not dead-lettered (none asked, delivered, still being attempted, or asked for again).
pub(crate) async fn redeliver(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
) -> Result<(StatusCode, axum::Json<Redelivery>)> {
    principal.require(Permission::ManageWebhooks)?;
    for _ in 0..REDELIVER_ATTEMPT_COUNT_MAX {
        let task = readable_task(&state, &principal, &id).await?;
        let decided = events::commands::redeliver_webhook(
            &task.state,
            task.read_version,
            task.correlation_id,
            &principal.subject,
            "gateway",
            events::now_ms(),
        );
        let new_event = match decided {
            Ok(event) => event,
            Err(RedeliverError::NotFound) => return Err(Error::NotFound { what: format!("task {id}") }),
            Err(error @ (RedeliverError::NoWebhook | RedeliverError::NotDead)) => {
                return Err(Error::WebhookConflict { task_id: task.task_id, reason: error.to_string() });
            }
            Err(RedeliverError::Event(error)) => return Err(error.into()),
        };
        let webhook_id = task.state.webhook_dead.clone().unwrap_or_default();
        let stream = StreamId::task(task.task_id);
        match state.log.append(&stream, ExpectedVersion::Exact(task.read_version), vec![new_event]).await {
            Ok(_) => {
                let redelivery = Redelivery {
                    task_id: task.task_id.to_string(),
                    webhook_id,
                    requested_by: principal.subject.clone(),
                };
                return Ok((StatusCode::ACCEPTED, axum::Json(redelivery)));
            }
            Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::Overloaded { what: "concurrent changes to this task (retry the redelivery)" })
}
