//! Workflows over HTTP: `POST /workflows` registers a definition (JSON, or YAML with
//! `Content-Type: application/yaml`), `GET /workflows/{name}` shows its versions,
//! `POST /workflows/{name}/runs` starts a run (202, or waits up to `wait_ms` like
//! `/tasks/execute`; `Idempotency-Key` answers the first run), `GET /runs` lists runs,
//! `GET /runs/{id}` shows a run and its step table, `GET /runs/{id}/events` its events, and
//! `POST /runs/{id}/cancel` cancels it. A run is read and cancelled like a task: by its
//! submitter, or with `read_all` / `cancel`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::workflow::{StepStatus, WorkflowEvent};
use events::{DomainEvent, EventLog, RecordedEvent, WorkflowId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use workflow::{LoadedRun, Start, StartRun, WorkflowError};

use crate::auth::{Permission, Principal};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// The longest a start waits for the run's end, ms.
pub const RUN_WAIT_MS_MAX: u64 = 30_000;

/// Runs listed per page at most.
pub const RUNS_PAGE_COUNT_MAX: usize = 500;

/// Events scanned per `GET /runs` call at most.
const RUNS_SCAN_EVENT_COUNT_MAX: usize = 100_000;

fn refused(error: WorkflowError) -> Error {
    match error {
        WorkflowError::Invalid { field, message } => Error::InvalidWorkflow { field, message },
        WorkflowError::NotFound(what) => Error::NotFound { what },
        WorkflowError::Ended(reason) => Error::RunConflict { run_id: String::new(), reason },
        WorkflowError::Log(error) => Error::Log(error),
        WorkflowError::Events(error) => Error::Events(error),
        WorkflowError::Contended(what) => Error::Internal(format!("contended: {what}")),
    }
}

/// What registering answered.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RegisteredView {
    /// The workflow's name.
    pub name: String,
    /// The version: a new one when the definition differs from every registered one.
    pub version: u32,
    /// The definition's blake3 hash (hex): runs are pinned to it.
    pub hash: String,
    /// Whether this call registered it (false: the same definition was registered before).
    pub created: bool,
}

/// `POST /workflows`: 201 with the new version, 200 when the same definition was registered.
pub(crate) async fn register(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    principal.require(Permission::ManageWorkflows)?;
    let yaml =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("yaml"));
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.contains("+json"));
    if !yaml && !json {
        return Err(Error::UnsupportedMediaType);
    }
    let text = std::str::from_utf8(&body).map_err(|_| Error::InvalidBody {
        field: None,
        message: "the body is not UTF-8".into(),
        unknown_field: false,
    })?;
    let definition =
        workflow::parse(text).map_err(|e| Error::InvalidWorkflow { field: e.field, message: e.message })?;
    let registered =
        workflow::register(state.log.as_ref(), definition, &principal.subject).await.map_err(refused)?;
    let status = if registered.created { StatusCode::CREATED } else { StatusCode::OK };
    let view = RegisteredView {
        name: registered.name,
        version: registered.version,
        hash: registered.hash,
        created: registered.created,
    };
    Ok((status, axum::Json(view)).into_response())
}

/// A definition's versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DefinitionView {
    /// The name.
    pub name: String,
    /// Every version, oldest first: its number, hash, who registered it, and the definition.
    pub versions: Vec<Value>,
}

/// `GET /workflows/{name}`.
pub(crate) async fn definition(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> Result<axum::Json<DefinitionView>> {
    principal.require(Permission::ReadOwn)?;
    let versions = workflow::versions(state.log.as_ref(), &name).await.map_err(|e| match e {
        WorkflowError::Invalid { .. } => Error::NotFound { what: format!("workflow {name}") },
        other => refused(other),
    })?;
    if versions.is_empty() {
        return Err(Error::NotFound { what: format!("workflow {name}") });
    }
    let versions = versions
        .into_iter()
        .map(|v| {
            serde_json::json!({
                "version": v.version, "hash": v.hash, "by": v.by, "definition": v.definition,
            })
        })
        .collect();
    Ok(axum::Json(DefinitionView { name, versions }))
}

/// The body of a start.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The run's input (`${input…}` in the definition).
    #[serde(default)]
    pub input: Value,
    /// The version to run (default: the latest).
    #[serde(default)]
    pub version: Option<u32>,
    /// Wait up to this long for the run's end, ms (0 to 30,000; default 0: answer 202 at once).
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// Post the run's end here: a Standard Webhooks request signed with the `webhook_secret`
    /// of the answer, retried with backoff, each attempt recorded in the run's events.
    #[serde(default)]
    pub webhook_url: Option<String>,
}

/// A run's step.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StepView {
    /// The step's name.
    pub name: String,
    /// `pending`, `running`, `completed`, `failed`, `skipped`.
    pub status: String,
    /// Tasks run for it (attempts of every item).
    pub attempts: u32,
    /// A fan-out's item count, once evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
    /// Its tasks, latest attempt of each item: `{item, attempt, task_id, status}`.
    pub tasks: Vec<Value>,
    /// When its first task was scheduled, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// When it ended, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    /// Its output, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run: its status, output and step table.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunView {
    /// The run.
    pub run_id: String,
    /// The workflow's name.
    pub name: String,
    /// The version run.
    pub version: u32,
    /// The definition's hash the run is pinned to.
    pub definition_hash: String,
    /// `running`, `completed`, `failed`, `cancelled`.
    pub status: String,
    /// Whether it has ended.
    pub finished: bool,
    /// Who started it.
    pub submitter: String,
    /// Its input.
    pub input: Value,
    /// Its output, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it started, ms since the epoch.
    pub started_at_ms: i64,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The stream's version.
    pub version_of_stream: u64,
    /// Where the run's end is posted, if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The secret its webhook is signed with (`whsec_…`): in the answer that started it only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Its steps, in the definition's order.
    pub steps: Vec<StepView>,
}

fn lower(value: impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The view of a loaded run.
pub fn run_view(run: &LoadedRun) -> Option<RunView> {
    let started = run.state.started.as_ref()?;
    let mut times: std::collections::BTreeMap<&str, (Option<i64>, Option<i64>)> = Default::default();
    let mut finished_at_ms = None;
    let decoded: Vec<(i64, WorkflowEvent)> = run
        .events
        .iter()
        .filter_map(|r| WorkflowEvent::from_recorded(r).ok().map(|e| (r.metadata.occurred_at_ms, e)))
        .collect();
    for (at, event) in &decoded {
        match event {
            WorkflowEvent::StepScheduled(events::workflow::StepScheduled { step, .. })
            | WorkflowEvent::StepExpanded(events::workflow::StepExpanded { step, .. }) => {
                times.entry(step.as_str()).or_default().0.get_or_insert(*at);
            }
            WorkflowEvent::StepCompleted(events::workflow::StepCompleted { step, .. })
            | WorkflowEvent::StepFailed(events::workflow::StepFailed { step, .. })
            | WorkflowEvent::StepSkipped(events::workflow::StepSkipped { step, .. }) => {
                times.entry(step.as_str()).or_default().1 = Some(*at);
            }
            WorkflowEvent::Completed(_) | WorkflowEvent::Failed(_) | WorkflowEvent::Cancelled(_) => {
                finished_at_ms = Some(*at);
            }
            _ => {}
        }
    }
    let steps = started
        .definition
        .steps
        .iter()
        .map(|s| {
            let step = run.state.steps.get(&s.name).cloned().unwrap_or_default();
            let (started_at_ms, ended_at_ms) = times.get(s.name.as_str()).copied().unwrap_or_default();
            let attempts = step.runs.values().map(|r| r.attempt).sum();
            let tasks = step
                .runs
                .iter()
                .map(|(item, r)| {
                    let status = match &r.ended {
                        None => "running",
                        Some(Ok(_)) => "completed",
                        Some(Err(_)) => "failed",
                    };
                    serde_json::json!({"item": item, "attempt": r.attempt, "task_id": r.task_id, "status": status})
                })
                .collect();
            StepView {
                name: s.name.clone(),
                status: lower(step.status),
                attempts,
                items: step.items.as_ref().map(Vec::len),
                tasks,
                started_at_ms,
                ended_at_ms,
                output: step.output.clone(),
                reason: step.reason.clone(),
            }
        })
        .collect();
    Some(RunView {
        run_id: started.run_id.to_string(),
        name: started.name.clone(),
        version: started.version,
        definition_hash: started.definition_hash.clone(),
        status: lower(run.state.status),
        finished: run.state.status.is_final(),
        submitter: started.submitter.clone(),
        input: started.input.clone(),
        output: run.state.output.clone(),
        error: run.state.failure.clone(),
        started_at_ms: run.events.first().map_or(0, |e| e.metadata.occurred_at_ms),
        finished_at_ms,
        version_of_stream: run.version,
        webhook_url: started.webhook_url.clone(),
        webhook_secret: None,
        steps,
    })
}

/// `POST /workflows/{name}/runs`: 202 with the run (200 when it ended within `wait_ms`).
pub(crate) async fn start(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RunRequest>,
) -> Result<Response> {
    principal.require(Permission::Submit)?;
    let wait = crate::config::in_range("wait_ms", request.wait_ms, 0, RUN_WAIT_MS_MAX)?.unwrap_or(0);
    let idempotency_key = crate::routes::tasks::idempotency_key(&headers)?;
    if let Some(url) = &request.webhook_url {
        if url.len() > crate::admission::WEBHOOK_URL_BYTES_MAX {
            return Err(Error::InvalidParameter {
                what: "webhook_url".into(),
                message: format!("at most {} bytes", crate::admission::WEBHOOK_URL_BYTES_MAX),
            });
        }
        state.targets.check(url).await?;
    }
    let offered = state
        .config
        .agent_admin
        .as_ref()
        .and_then(|admin| admin.capabilities())
        .map(|c| c.into_iter().collect::<BTreeSet<_>>());
    let run = StartRun {
        what: Start::Named(name, request.version),
        input: request.input,
        submitter: principal.subject.clone(),
        idempotency_key,
        offered,
        run_id: None,
        parent: None,
        webhook_url: request.webhook_url,
    };
    let (run_id, _) = workflow::start(state.log.as_ref(), run).await.map_err(refused)?;
    let loaded = workflow::wait(state.log.as_ref(), run_id, Duration::from_millis(wait)).await?;
    let mut view = run_view(&loaded).ok_or_else(|| Error::Internal(format!("run {run_id} has no start")))?;
    if view.webhook_url.is_some() {
        view.webhook_secret =
            Some(crate::webhooks::run_secret_for(&state.config.webhooks.master_secret, run_id)?);
    }
    let status = if view.finished { StatusCode::OK } else { StatusCode::ACCEPTED };
    let mut response = (status, axum::Json(view)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("/runs/{run_id}")) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

pub(crate) async fn readable_run(state: &AppState, principal: &Principal, id: &str) -> Result<LoadedRun> {
    let not_found = || Error::NotFound { what: format!("run {id}") };
    let run_id: WorkflowId = id.parse().map_err(|_| not_found())?;
    let run = workflow::load_run(state.log.as_ref(), run_id).await?;
    match &run.state.started {
        Some(started) if principal.can_read(&started.submitter) => Ok(run),
        _ => Err(not_found()),
    }
}

/// `GET /runs/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunView>> {
    let run = readable_run(&state, &principal, &id).await?;
    run_view(&run).map(axum::Json).ok_or_else(|| Error::NotFound { what: format!("run {id}") })
}

/// A run's event, as `GET /runs/{id}/events` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunEventView {
    /// The stream version.
    pub version: u64,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened, ms since the epoch.
    pub occurred_at_ms: i64,
    /// Who emitted it.
    pub emitter: String,
    /// The payload (schemas/events/).
    pub data: Value,
}

pub(crate) fn event_view(recorded: &RecordedEvent) -> RunEventView {
    RunEventView {
        version: recorded.version,
        event_type: recorded.event_type.to_string(),
        occurred_at_ms: recorded.metadata.occurred_at_ms,
        emitter: recorded.metadata.emitter.clone(),
        data: WorkflowEvent::from_recorded(recorded).and_then(|e| e.to_json()).unwrap_or(Value::Null),
    }
}

/// `GET /runs/{id}/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<RunEventView>>> {
    let run = readable_run(&state, &principal, &id).await?;
    Ok(axum::Json(run.events.iter().map(event_view).collect()))
}

/// The body of a cancel.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `POST /runs/{id}/cancel`: 202; 409 when the run has ended.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    crate::extract::OptionalJsonBody(body): crate::extract::OptionalJsonBody<CancelRun>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    principal.require(Permission::Cancel)?;
    let run = readable_run(&state, &principal, &id).await?;
    let run_id = run
        .state
        .started
        .as_ref()
        .map(|s| s.run_id)
        .ok_or_else(|| Error::NotFound { what: format!("run {id}") })?;
    let reason = if body.reason.is_empty() { "cancelled over HTTP".to_string() } else { body.reason };
    workflow::cancel(state.log.as_ref(), run_id, &principal.subject, &reason).await.map_err(|e| match e {
        WorkflowError::Ended(reason) => Error::RunConflict { run_id: run_id.to_string(), reason },
        other => refused(other),
    })?;
    Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({"run_id": run_id, "cancel_requested": true}))))
}

/// The body of a signal.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// What it carries (an approval step's output), at most 64 KiB of JSON.
    #[serde(default)]
    pub payload: Value,
    /// The approval step it is meant for (default: every step waiting for the signal then).
    #[serde(default)]
    pub step: Option<String>,
}

/// `POST /runs/{id}/signals/{name}` (`signal`, on a run one can read): 202; 409 when the run
/// or the named step has ended.
pub(crate) async fn signal(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((id, name)): Path<(String, String)>,
    crate::extract::OptionalJsonBody(body): crate::extract::OptionalJsonBody<SignalRequest>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    principal.require(Permission::Signal)?;
    let run = readable_run(&state, &principal, &id).await?;
    let run_id = run
        .state
        .started
        .as_ref()
        .map(|s| s.run_id)
        .ok_or_else(|| Error::NotFound { what: format!("run {id}") })?;
    workflow::signal(
        state.log.as_ref(),
        run_id,
        &name,
        body.step.as_deref(),
        body.payload,
        &principal.subject,
    )
    .await
    .map_err(|e| match e {
        WorkflowError::Ended(reason) => Error::RunConflict { run_id: run_id.to_string(), reason },
        other => refused(other),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"run_id": run_id, "signal": name, "accepted": true})),
    ))
}

/// The query of `GET /runs`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Only runs of this workflow.
    #[serde(default)]
    pub name: Option<String>,
    /// Only runs in this status (`running`, `completed`, `failed`, `cancelled`).
    #[serde(default)]
    pub status: Option<String>,
    /// At most this many (default and most 500).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Where the previous page stopped.
    #[serde(default)]
    pub cursor: Option<u64>,
}

/// A page of runs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunPage {
    /// The runs: id, name, status, submitter, started and finished times.
    pub runs: Vec<Value>,
    /// Pass as `cursor` for the next page, when there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
}

/// `GET /runs`: the runs one can read, oldest first, filtered by name and status — from the
/// runs view when the gateway has read models (the view follows the log within moments), else
/// by scanning the log.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    QueryParams(query): QueryParams<RunsQuery>,
) -> Result<axum::Json<RunPage>> {
    principal.require(Permission::ReadOwn)?;
    const STATUSES: [&str; 4] = ["running", "completed", "failed", "cancelled"];
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(Error::InvalidParameter {
            what: "status".into(),
            message: format!("one of {}", STATUSES.join(", ")),
        });
    }
    let limit =
        crate::config::in_range("limit", query.limit, 1, RUNS_PAGE_COUNT_MAX)?.unwrap_or(RUNS_PAGE_COUNT_MAX);
    let log: &dyn EventLog = state.log.as_ref();
    let mut cursor =
        crate::config::in_range("cursor", query.cursor, 0, crate::config::VERSION_MAX)?.unwrap_or(0);
    if let Some(read) = &state.read {
        // The runs view: filtered in the database, in the order runs started.
        let submitter =
            if principal.has(Permission::ReadAll) { None } else { Some(principal.subject.clone()) };
        let page = read
            .runs
            .list(&projections::RunQuery {
                name: query.name.clone(),
                status: query.status.clone(),
                submitter,
                from_position: i64::try_from(cursor).unwrap_or(i64::MAX),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            })
            .await?;
        let next_cursor = (page.len() == limit)
            .then(|| page.last().and_then(|r| u64::try_from(r.started_position).ok()).map(|p| p + 1))
            .flatten();
        let runs = page
            .into_iter()
            .map(|run| {
                serde_json::json!({
                    "run_id": run.run_id, "name": run.name, "version": run.version, "status": run.status,
                    "submitter": run.submitter, "started_at_ms": run.started_at_ms,
                    "finished_at_ms": run.finished_at_ms, "steps": run.steps, "steps_done": run.steps_done,
                })
            })
            .collect();
        return Ok(axum::Json(RunPage { runs, next_cursor }));
    }
    // Without read models (a gateway on the log alone): the log, scanned.
    let (mut scanned, mut runs) = (0usize, Vec::new());
    loop {
        let page = log.read_all(cursor, 1_000).await?;
        let exhausted = page.len() < 1_000;
        for event in page {
            cursor = event.position + 1;
            scanned += 1;
            if event.event_type.as_str() != "workflow_started" {
                continue;
            }
            let Ok(run_id) = event.stream_id.entity_id().parse::<WorkflowId>() else { continue };
            let run = workflow::load_run(log, run_id).await?;
            let Some(view) = run_view(&run) else { continue };
            if !principal.can_read(&view.submitter)
                || query.name.as_ref().is_some_and(|n| *n != view.name)
                || query.status.as_ref().is_some_and(|s| *s != view.status)
            {
                continue;
            }
            runs.push(serde_json::json!({
                "run_id": view.run_id, "name": view.name, "version": view.version, "status": view.status,
                "submitter": view.submitter, "started_at_ms": view.started_at_ms, "finished_at_ms": view.finished_at_ms,
                "steps": view.steps.len(),
                "steps_done": view.steps.iter().filter(|s| s.status == lower(StepStatus::Completed)).count(),
            }));
            if runs.len() == limit {
                return Ok(axum::Json(RunPage { runs, next_cursor: Some(cursor) }));
            }
        }
        if exhausted || scanned >= RUNS_SCAN_EVENT_COUNT_MAX {
            return Ok(axum::Json(RunPage { runs, next_cursor: (!exhausted).then_some(cursor) }));
        }
    }
}
