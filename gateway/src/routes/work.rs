//! Pull workers (`work`: a token whose subject is the agent's id, role `agent`; admins too):
//! `POST /agents/{id}/work` long-polls for an attempt offered to the agent and leases it;
//! `POST /agents/{id}/work/{task}/result` posts the signed result — the same JSON a pushed
//! agent answers with (the federation verifies it as any other), `/progress` reports progress, `/fail` gives the attempt up; and
//! `POST /agents/{id}/heartbeat` renews the worker's leases and notes it alive (any HTTP agent
//! may send it, so that its health follows its heartbeats).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::{AgentId, SealedEnvelope, SignedResult, TaskId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::{Permission, Principal};
use crate::config::{PullWork, in_range};
use crate::error::{Error, Result};
use crate::extract::{IdPath, JsonBody, OptionalJsonBody, QueryParams};
use crate::state::AppState;

/// The longest a poll waits, ms.
pub const POLL_WAIT_MS_MAX: u64 = 60_000;

/// The poll's wait when it names none, ms.
pub const POLL_WAIT_MS_DEFAULT: u64 = 25_000;

/// The shortest and longest lease a worker may ask for, ms (default 30 s).
pub const LEASE_MS_RANGE: (u64, u64) = (1_000, 300_000);

/// The longest progress message, bytes.
pub const PROGRESS_MESSAGE_BYTES_MAX: usize = 4_096;

/// The query of a poll.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    /// How long to wait for an offer, ms (default 25,000, at most 60,000; 0 answers at once).
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// The lease asked for, ms (default 30,000; 1,000 to 300,000).
    #[serde(default)]
    pub lease_ms: Option<u64>,
}

/// An attempt leased to the worker.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Work {
    /// The task.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// What to run, sealed by the federation: check its seal, run it, sign the result.
    pub envelope: SealedEnvelope,
    /// The lease, ms: renewed by progress and heartbeats; after it lapses the attempt moves on.
    pub lease_ms: u64,
}

/// The body of a progress report.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkProgress {
    /// Percent done, if known (0 to 100).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub percent: Option<u8>,
    /// What it is doing.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub message: String,
}

/// The body of a failure.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkFailure {
    /// Why the worker gives the attempt up.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub reason: String,
}

/// What the board said.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkAccepted {
    /// The task.
    pub task_id: TaskId,
    /// Always true.
    pub accepted: bool,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidBody { field: Some(field.into()), message: message.into(), unknown_field: false }
}

/// The agent the token may work as.
fn as_agent(principal: &Principal, id: &str) -> Result<AgentId> {
    principal.require(Permission::Work)?;
    let agent = AgentId::new(id).map_err(|_| Error::NotFound { what: format!("agent {id}") })?;
    if principal.subject != agent.as_str() && !principal.has(Permission::Admin) {
        return Err(Error::Forbidden { permission: "work (as the agent the token's subject names)" });
    }
    Ok(agent)
}

/// The board, and the agent the token may work as.
fn worker(state: &AppState, principal: &Principal, id: &str) -> Result<(Arc<dyn PullWork>, AgentId)> {
    let agent = as_agent(principal, id)?;
    let board = state.config.pull.clone().ok_or_else(|| Error::NotFound {
        what: "pull work on this gateway (it runs without a pipeline)".into(),
    })?;
    Ok((board, agent))
}

fn task_id(text: &str) -> Result<TaskId> {
    text.parse().map_err(|_| Error::NotFound { what: format!("task {text}") })
}

/// `POST /agents/{id}/work`: 200 with a leased attempt, or 204 when none came in the wait.
pub(crate) async fn poll(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams<PollQuery>,
) -> Result<Response> {
    let (board, agent) = worker(&state, &principal, &id)?;
    let wait = in_range("wait_ms", query.wait_ms, 0, POLL_WAIT_MS_MAX)?.unwrap_or(POLL_WAIT_MS_DEFAULT);
    let lease = in_range("lease_ms", query.lease_ms, LEASE_MS_RANGE.0, LEASE_MS_RANGE.1)?.unwrap_or(30_000);
    match board.take(agent, Duration::from_millis(wait), Duration::from_millis(lease)).await {
        Some(offer) => Ok(axum::Json(Work {
            task_id: offer.task_id,
            attempt: offer.attempt,
            envelope: offer.envelope,
            lease_ms: offer.lease_ms,
        })
        .into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST /agents/{id}/work/{task}/result`: 202 once the attempt has it; 409 without a lease.
pub(crate) async fn result(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((id, task)): Path<(String, String)>,
    JsonBody(body): JsonBody<SignedResult>,
) -> Result<(StatusCode, axum::Json<WorkAccepted>)> {
    let (board, agent) = worker(&state, &principal, &id)?;
    let task_id = task_id(&task)?;
    board.complete(agent, task_id, body).await.map_err(|reason| Error::WorkConflict { reason })?;
    Ok((StatusCode::ACCEPTED, axum::Json(WorkAccepted { task_id, accepted: true })))
}

/// `POST /agents/{id}/work/{task}/progress`: 202; renews the lease.
pub(crate) async fn progress(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((id, task)): Path<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<WorkProgress>,
) -> Result<(StatusCode, axum::Json<WorkAccepted>)> {
    let (board, agent) = worker(&state, &principal, &id)?;
    let task_id = task_id(&task)?;
    if body.percent.is_some_and(|p| p > 100) {
        return Err(invalid("percent", "0 to 100"));
    }
    if body.message.len() > PROGRESS_MESSAGE_BYTES_MAX {
        return Err(invalid("message", format!("at most {PROGRESS_MESSAGE_BYTES_MAX} bytes")));
    }
    board
        .progress(agent, task_id, body.percent, body.message)
        .await
        .map_err(|reason| Error::WorkConflict { reason })?;
    Ok((StatusCode::ACCEPTED, axum::Json(WorkAccepted { task_id, accepted: true })))
}

/// `POST /agents/{id}/work/{task}/fail`: 202; the attempt fails (the agent's fault).
pub(crate) async fn fail(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((id, task)): Path<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<WorkFailure>,
) -> Result<(StatusCode, axum::Json<WorkAccepted>)> {
    let (board, agent) = worker(&state, &principal, &id)?;
    let task_id = task_id(&task)?;
    if body.reason.len() > PROGRESS_MESSAGE_BYTES_MAX {
        return Err(invalid("reason", format!("at most {PROGRESS_MESSAGE_BYTES_MAX} bytes")));
    }
    let reason =
        if body.reason.is_empty() { "the worker gave the attempt up".to_string() } else { body.reason };
    board.fail(agent, task_id, reason).await.map_err(|reason| Error::WorkConflict { reason })?;
    Ok((StatusCode::ACCEPTED, axum::Json(WorkAccepted { task_id, accepted: true })))
}

/// `POST /agents/{id}/heartbeat`: 204.
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    let agent = as_agent(&principal, &id)?;
    match (&state.config.pull, &state.read) {
        (Some(board), _) => board.heartbeat(agent).await,
        // No pipeline here: the beat still goes to the liveness table the health reader reads.
        (None, Some(read)) => {
            projections::LivenessTable::new(read.db.clone())
                .beat(agent.as_str(), events::now_ms(), 0)
                .await?;
        }
        (None, None) => {
            return Err(Error::NotFound {
                what: "heartbeats on this gateway (it has no read models)".into(),
            });
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
