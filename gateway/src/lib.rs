//! # gateway
//!
//! Pantheon's HTTP and WebSocket API over the event log: tasks submitted synchronously
//! (`POST /tasks/execute`), asynchronously (`POST /tasks/submit`, with a signed webhook) or
//! followed as a stream (`GET /tasks/{id}/stream`, WebSocket or SSE). The gateway signs what it
//! admits (`TaskSubmitted` on `Channel::Gateway`) and follows the task streams for progress and
//! results; it holds no task state of its own — the log is the only truth.
//!
//! # Layout
//! - [`serve`] / [`serve_on`] / [`app`]: the server, and the router tests drive directly.
//! - [`config`]: [`GatewayConfig`] and the named limits.
//! - [`auth`]: JWT verification (HS256, RS256, EdDSA, JWKS), roles → [`Permission`]s, dev tokens.
//! - [`limits`]: per-principal and per-address GCRA rate limits.
//! - `extract`: JSON bodies and query strings refused precisely (field path, unknown fields).
//! - `admission`: checking, signing and appending a submission; idempotency keys.
//! - [`task`]: a task's stream folded into the API's [`TaskView`].
//! - `follow`: one log subscription that wakes waiting requests and streams.
//! - `routes/tasks.rs`, `routes/agents.rs`, `routes/system.rs`: the endpoints.
//! - [`stream`]: WebSocket and SSE streams of a task's events, with cancel.
//! - [`render`]: results as JSON, Markdown or HTML.
//! - [`webhooks`]: Standard Webhooks signing, delivery with retries and dead letters, SSRF guard.
//! - [`openapi`]: the OpenAPI 3.1 document (committed as `schemas/openapi.json`).
//! - `metrics`: Prometheus text at `/metrics`.
//! - [`Error`]: the one error type and its HTTP mapping.

pub mod admission;
pub mod auth;
pub mod config;
mod error;
mod extract;
mod follow;
pub mod limits;
mod metrics;
pub mod openapi;
pub mod render;
pub mod routes;
pub mod run_stream;
mod state;
pub mod stream;
pub mod task;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, post};
use events::EventLog;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::{AuthConfig, AuthFile, Permission, Principal, VerifyingKey};
pub use config::{
    AgentAdmin, AgentAdminError, AgentChange, GatewayConfig, Limit, LimitSpec, Probe, PullWork, RateLimits,
    RateLimitsFile, Reload, ReloadOutcome, WebhookConfig, WorkOffer,
};
pub use error::{Component, Error, ErrorBody, ErrorDetail, Result};
pub use metrics::Metrics;
pub use state::AppState;
pub use task::{EventView, TaskView};

/// How long open connections (streams, waiting executes) get to finish after the shutdown
/// signal before the server stops anyway.
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

async fn count_responses(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.metrics.count_status(response.status().as_u16());
    response
}

/// The router over `state`: every endpoint, authentication, limits and JSON errors.
pub fn app(state: AppState) -> Router {
    use routes::{agents, system, tasks, webhooks, work, workflows};
    let protected = Router::new()
        .route("/tasks/submit", post(tasks::submit))
        .route("/tasks/execute", post(tasks::execute))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::get))
        .route("/tasks/{id}/events", get(tasks::events))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/stream", get(stream::stream))
        .route("/agents", get(agents::list).post(agents::register))
        .route("/agents/{id}", get(agents::get).delete(agents::retire))
        .route("/agents/{id}/suspend", post(agents::suspend))
        .route("/agents/{id}/reinstate", post(agents::reinstate))
        .route("/agents/{id}/work", post(work::poll))
        .route("/agents/{id}/work/{task}/result", post(work::result))
        .route("/agents/{id}/work/{task}/progress", post(work::progress))
        .route("/agents/{id}/work/{task}/fail", post(work::fail))
        .route("/agents/{id}/heartbeat", post(work::heartbeat))
        .route("/workflows", post(workflows::register))
        .route("/workflows/{name}", get(workflows::definition))
        .route("/workflows/{name}/runs", post(workflows::start))
        .route("/runs", get(workflows::list))
        .route("/runs/{id}", get(workflows::get))
        .route("/runs/{id}/events", get(workflows::events))
        .route("/runs/{id}/cancel", post(workflows::cancel))
        .route("/runs/{id}/signals/{name}", post(workflows::signal))
        .route("/runs/{id}/stream", get(run_stream::stream))
        .route("/webhooks/dead", get(webhooks::dead))
        .route("/webhooks/dead/{id}/redeliver", post(webhooks::redeliver))
        .route("/metrics", get(system::metrics))
        .route("/admin/reload", post(system::reload))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));
    let public = Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi));
    Router::new()
        .merge(public)
        .merge(protected)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(config::REQUEST_BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(render::require_acceptable))
        .layer(from_fn_with_state(state.clone(), limits::limit_address))
        .layer(from_fn_with_state(state.clone(), count_responses))
        .with_state(state)
}

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn serve(
    config: GatewayConfig,
    log: Arc<dyn EventLog>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Startup(format!("cannot listen on {}: {e}", config.listen)))?;
    serve_on(listener, config, log, shutdown).await
}

/// Serves on a bound listener (tests bind port 0) until `shutdown` completes: the HTTP API and
/// the webhook dispatcher. Open connections get [`SHUTDOWN_GRACE_MS`] to finish.
pub async fn serve_on(
    listener: TcpListener,
    config: GatewayConfig,
    log: Arc<dyn EventLog>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = AppState::new(config, log)?;
    let client = webhooks::client(&state.config.webhooks)?;
    let (stop, stopped) = watch::channel(false);
    let dispatcher =
        tokio::spawn(webhooks::run(state.clone(), client.clone(), webhooks::Feed::Tasks, stopped.clone()));
    let run_dispatcher =
        tokio::spawn(webhooks::run(state.clone(), client, webhooks::Feed::Runs, stopped.clone()));
    let signal = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            let _ = stop.send(true);
        }
    };
    let follower = Arc::clone(&state.follower);
    let router = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let mut grace = stopped;
    let result = tokio::select! {
        result = server => result.map_err(|e| Error::Internal(format!("the server failed: {e}"))),
        () = async move {
            let _ = grace.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(Duration::from_millis(SHUTDOWN_GRACE_MS)).await;
        } => Ok(()),
    };
    let _ = stop.send(true);
    let _ = dispatcher.await;
    let _ = run_dispatcher.await;
    follower.close().await;
    result
}
