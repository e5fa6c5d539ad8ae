//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, and the JSON answers for unknown routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use events::StreamId;
use schemars::JsonSchema;
use serde::Serialize;

use crate::auth::{Permission, Principal};
use crate::error::{Component, Error, Result};
use crate::state::AppState;

/// How long the log, and then the read models' database, may each take to answer a readiness
/// probe: a probe answers within twice this.
const READY_TIMEOUT_MS: u64 = 2_000;

/// A probe's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// `GET /readyz`: ready only when the log and the read models' database answer; the 503 body
/// names the one that did not (the cause is logged).
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>> {
    let probe = StreamId::new("gateway-readiness").map_err(|e| Error::Internal(e.to_string()))?;
    let log = async { state.log.stream_version(&probe).await.map(|_| ()).map_err(|e| e.to_string()) };
    ready(Component::EventLog, log).await?;
    if let Some(read) = &state.read {
        ready(Component::ReadModels, async { read.db.ping().await.map_err(|e| events::error_chain(&e)) })
            .await?;
    }
    for probe in &state.config.probes {
        if let Some(reason) = probe.degraded() {
            tracing::warn!(%reason, "readiness: degraded");
            return Err(Error::NotReady { component: Component::Probe(reason) });
        }
    }
    Ok(axum::Json(Health { status: "ready".into() }))
}

/// Whether `component` answers `probe` within [`READY_TIMEOUT_MS`]; logs why not.
async fn ready(
    component: Component,
    probe: impl std::future::Future<Output = std::result::Result<(), String>>,
) -> Result<()> {
    match tokio::time::timeout(Duration::from_millis(READY_TIMEOUT_MS), probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%component, %error, "readiness: failed");
            Err(Error::NotReady { component })
        }
        Err(_) => {
            tracing::warn!(%component, timeout_ms = READY_TIMEOUT_MS, "readiness: no answer in time");
            Err(Error::NotReady { component })
        }
    }
}

/// `GET /metrics`: Prometheus text (needs `admin`).
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Result<Response> {
    principal.require(Permission::Admin)?;
    let mut text = state.metrics.render();
    for probe in &state.config.probes {
        text.push_str(&probe.metrics());
    }
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

/// `POST /admin/reload`: reads the configuration again and applies what it can without a
/// restart (needs `admin`); 422 `reload_refused` when it does not load.
pub(crate) async fn reload(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Result<axum::Json<crate::config::ReloadOutcome>> {
    principal.require(Permission::Admin)?;
    let reload = state.config.reload.as_ref().ok_or_else(|| Error::NotFound {
        what: "reloading on this gateway (it runs without a pipeline)".into(),
    })?;
    match reload.reload(principal.subject.clone()).await {
        Ok(outcome) => Ok(axum::Json(outcome)),
        Err(reason) => Err(Error::ReloadRefused { reason }),
    }
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    let mut response = crate::openapi::document_text().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Unknown routes: JSON 404.
pub(crate) async fn not_found() -> Error {
    Error::NotFound { what: "route".into() }
}

/// Known routes with another method: JSON 405.
pub(crate) async fn method_not_allowed() -> Response {
    let body = crate::error::ErrorBody {
        error: crate::error::ErrorDetail {
            code: "method_not_allowed".into(),
            message: "this route does not take that method".into(),
            field: None,
            task_id: None,
            retry_after_s: None,
        },
    };
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}
