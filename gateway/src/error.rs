//! The crate's one error type and its one HTTP mapping.
//!
//! Every refusal is JSON `{"error": {"code", "message", …}}` with a stable `code`. Variants are
//! sorted by who must act: the client (4xx, the message says what to fix), a conflict with the
//! task's state (409/422), or the server (5xx: the body says only that something failed, the
//! cause is logged with a correlation id the body repeats).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::{LogError, TaskId};
use schemars::JsonSchema;
use serde::Serialize;

/// What the gateway can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No valid bearer token: missing, malformed, badly signed, expired, wrong algorithm.
    /// The reason is logged, never returned.
    #[error("authentication failed: {reason}")]
    Unauthenticated {
        /// Why (logged only).
        reason: String,
    },
    /// The principal lacks a permission.
    #[error("the token does not grant `{permission}`")]
    Forbidden {
        /// The permission needed.
        permission: &'static str,
    },
    /// Nothing at this address (or nothing this principal may see).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The request body is not acceptable JSON for this endpoint.
    #[error("invalid request body{}: {message}", field.as_ref().map(|f| format!(" at `{f}`")).unwrap_or_default())]
    InvalidBody {
        /// The JSON path of the offending field, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
        /// Whether the problem is a field the endpoint does not know.
        unknown_field: bool,
    },
    /// A query parameter, path segment or header is invalid.
    #[error("invalid {what}: {message}")]
    InvalidParameter {
        /// Which parameter.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The body is not JSON.
    #[error("the body must be JSON (content-type: application/json)")]
    UnsupportedMediaType,
    /// The body is over the size limit.
    #[error("the body is over the {limit_bytes}-byte limit")]
    BodyTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The agent's state does not allow the change (retired, suspended already…).
    #[error("{reason}")]
    AgentConflict {
        /// Why.
        reason: String,
    },
    /// The `Accept` header names no type the endpoint answers in.
    #[error("this endpoint answers in {produces}; the request accepts none of them")]
    NotAcceptable {
        /// The types the endpoint answers in.
        produces: String,
    },
    /// Too many requests from this principal or address.
    #[error("too many requests from this {scope}; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// `principal` or `address`.
        scope: &'static str,
        /// When a request will be admitted again.
        retry_after: Duration,
    },
    /// The idempotency key was used before with a different request.
    #[error("the idempotency key was used for task {task_id} with a different request")]
    IdempotencyKeyReused {
        /// The task the key belongs to.
        task_id: TaskId,
    },
    /// The webhook target is not acceptable.
    #[error("webhook refused: {reason}")]
    WebhookRefused {
        /// Why.
        reason: String,
    },
    /// The task's webhook cannot be delivered again (none asked, not dead-lettered).
    #[error("task {task_id}: {reason}")]
    WebhookConflict {
        /// The task.
        task_id: TaskId,
        /// Why.
        reason: String,
    },
    /// A workflow definition or run request that cannot run: the field and why.
    #[error("{field}: {message}")]
    InvalidWorkflow {
        /// The field of the definition or request (`steps[1].needs[0]`, `input`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A run that cannot take the request (it has ended).
    #[error("run {run_id}: {reason}")]
    RunConflict {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// A pull worker's call for an attempt it holds no lease on (or a result that does not
    /// answer it).
    #[error("{reason}")]
    WorkConflict {
        /// Why.
        reason: String,
    },
    /// A reload found a configuration that does not load; the one in force stays.
    #[error("the configuration was not reloaded: {reason}")]
    ReloadRefused {
        /// Why, naming the file and the mistake.
        reason: String,
    },
    /// The task has ended and cannot take the change.
    #[error("task {task_id} has already ended ({status})")]
    TaskFinished {
        /// The task.
        task_id: TaskId,
        /// Its final status.
        status: String,
    },
    /// The task did not finish within the wait; it goes on.
    #[error("task {task_id} did not finish within {waited_ms} ms; it goes on")]
    ExecuteTimeout {
        /// The task, to look up later.
        task_id: TaskId,
        /// How long the request waited.
        waited_ms: u64,
    },
    /// A bounded resource (streams, webhook queue) is full.
    #[error("the server is at its limit of {what}; try again later")]
    Overloaded {
        /// Which limit.
        what: &'static str,
    },
    /// A component the gateway needs does not answer (readiness).
    #[error("{component} is not available")]
    NotReady {
        /// Which: the event log, or the read models' database.
        component: Component,
    },
    /// A read model (task view, health, reputation) is not configured on this gateway.
    #[error("{what} is not available on this gateway: it runs without read models")]
    Unavailable {
        /// What was asked for.
        what: &'static str,
    },
    /// The log failed.
    #[error("event log failed: {0}")]
    Log(#[from] LogError),
    /// A read model failed.
    #[error("read model failed: {0}")]
    ReadModel(#[from] projections::Error),
    /// Encoding or decoding an event failed.
    #[error("event encoding failed: {0}")]
    Events(#[from] events::Error),
    /// Something else inside the gateway failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// The gateway could not start (bad configuration, socket).
    #[error("cannot start the gateway: {0}")]
    Startup(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the gateway depends on to serve: what a readiness probe checks and names when it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Component {
    /// The event log.
    EventLog,
    /// The read models' database (task view, health, reputation).
    ReadModels,
    /// Another part of the process (a [`crate::Probe`]), with why it is degraded.
    Probe(String),
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EventLog => "the event log",
            Self::ReadModels => "the read models' database",
            Self::Probe(reason) => reason,
        })
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error: a stable code, a message, and fields some codes carry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`unauthenticated`, `forbidden`, `not_found`,
    /// `invalid_body`, `unknown_field`, `invalid_parameter`, `unsupported_media_type`,
    /// `body_too_large`, `rate_limited`, `idempotency_key_reused`, `webhook_refused`,
    /// `task_finished`, `execute_timeout`, `overloaded`, `not_ready`, `unavailable`, `internal`).
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The offending JSON field, for `invalid_body` / `unknown_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The task concerned, for `execute_timeout`, `task_finished`, `idempotency_key_reused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Seconds to wait, for `rate_limited` and for `unavailable` when the log failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl Error {
    /// The HTTP status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::InvalidBody { unknown_field: true, .. } => (StatusCode::BAD_REQUEST, "unknown_field"),
            Self::InvalidBody { .. } => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::NotAcceptable { .. } => (StatusCode::NOT_ACCEPTABLE, "not_acceptable"),
            Self::AgentConflict { .. } => (StatusCode::CONFLICT, "agent_conflict"),
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::IdempotencyKeyReused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::WebhookRefused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "webhook_refused"),
            Self::TaskFinished { .. } => (StatusCode::CONFLICT, "task_finished"),
            Self::WebhookConflict { .. } => (StatusCode::CONFLICT, "webhook_conflict"),
            Self::ReloadRefused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "reload_refused"),
            Self::WorkConflict { .. } => (StatusCode::CONFLICT, "work_conflict"),
            Self::InvalidWorkflow { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow"),
            Self::RunConflict { .. } => (StatusCode::CONFLICT, "run_conflict"),
            Self::ExecuteTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "execute_timeout"),
            Self::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::NotReady { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::ReadModel(projections::Error::InvalidQuery { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid_parameter")
            }
            // The backend failing or closed (a timeout, a server restarting): the request
            // may well succeed in a moment, and says so with Retry-After.
            Self::Log(LogError::Backend(_) | LogError::Closed) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::Log(_) | Self::Events(_) | Self::ReadModel(_) | Self::Internal(_) | Self::Startup(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// The body a client sees: internals and authentication reasons stay in the log.
    pub fn body(&self) -> ErrorBody {
        let (status, code) = self.status_and_code();
        let message = match self {
            Self::Unauthenticated { .. } => "a valid bearer token is required".to_string(),
            Self::Log(LogError::Backend(_) | LogError::Closed) => {
                "the event log is not answering right now; try again shortly".to_string()
            }
            _ if status.is_server_error()
                && !matches!(
                    self,
                    Self::NotReady { .. } | Self::Unavailable { .. } | Self::Overloaded { .. }
                ) =>
            {
                "the server failed to handle the request; it has been logged".to_string()
            }
            _ => self.to_string(),
        };
        let mut detail =
            ErrorDetail { code: code.to_string(), message, field: None, task_id: None, retry_after_s: None };
        match self {
            Self::InvalidBody { field, .. } => detail.field = field.clone(),
            Self::InvalidWorkflow { field, .. } => detail.field = Some(field.clone()),
            Self::ExecuteTimeout { task_id, .. }
            | Self::TaskFinished { task_id, .. }
            | Self::IdempotencyKeyReused { task_id } => detail.task_id = Some(task_id.to_string()),
            Self::RateLimited { retry_after, .. } => detail.retry_after_s = Some(retry_after_s(*retry_after)),
            Self::Log(LogError::Backend(_) | LogError::Closed) => {
                detail.retry_after_s = Some(LOG_UNAVAILABLE_RETRY_AFTER_S);
            }
            _ => {}
        }
        ErrorBody { error: detail }
    }
}

/// The Retry-After of a request refused because the log's backend failed (a timeout, a
/// restarting server): a second, the time a restarted nats-server or PostgreSQL takes to answer.
pub(crate) const LOG_UNAVAILABLE_RETRY_AFTER_S: u64 = 1;

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_s(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        match &self {
            Self::Unauthenticated { reason } => {
                tracing::info!(%reason, "refused a request without a valid token")
            }
            _ if status.is_server_error() => tracing::error!(error = %self, "request failed"),
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthenticated { .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s(*retry_after)));
            }
            Self::Log(LogError::Backend(_) | LogError::Closed) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(LOG_UNAVAILABLE_RETRY_AFTER_S));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_are_hidden() {
        let body = Error::Internal("database password is hunter2".into()).body();
        assert_eq!(body.error.code, "internal");
        assert!(!body.error.message.contains("hunter2"));
        let body = Error::Unauthenticated { reason: "expired at 12".into() }.body();
        assert!(!body.error.message.contains("expired"));
    }

    #[test]
    fn a_failing_log_backend_is_503_with_retry_after() {
        let error = Error::Log(LogError::backend("timed out"));
        assert_eq!(error.status_and_code(), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        let body = error.body();
        assert_eq!(body.error.retry_after_s, Some(LOG_UNAVAILABLE_RETRY_AFTER_S));
        assert!(!body.error.message.contains("timed out"), "internals stay in the log");
        let response = Error::Log(LogError::Closed).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        // A conflict is not the backend failing.
        let conflict = Error::Log(LogError::Corrupt { position: 1, reason: "x".into() });
        assert_eq!(conflict.status_and_code().0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_s(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_s(Duration::from_millis(1_500)), 2);
    }
}
