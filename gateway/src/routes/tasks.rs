//! `/tasks`: submit, execute, read, page through events, cancel, list.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::commands::CancelError;
use events::task::TaskSubmitted;
use events::{DomainEvent, ExpectedVersion, LogError, StreamId, TaskEvent, TaskId, TaskStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::admission::{self, SubmitResponse, TaskRequest};
use crate::auth::{Permission, Principal};
use crate::config::{
    EVENTS_PAGE_COUNT_MAX, EXECUTE_END_GRACE_MS, EXECUTE_WAIT_MS_MAX, TASKS_PAGE_COUNT_MAX, VERSION_MAX,
    in_range,
};
use crate::error::{Error, Result};
use crate::extract::{IdPath, JsonBody, OptionalJsonBody, QueryParams};
use crate::render::{self, Format};
use crate::state::AppState;
use crate::task::{EventView, TaskView, TrackedTask, parse_task_id};
use crate::webhooks;

/// How often a cancel re-reads the task when another writer got there first (a busy task's
/// phases append quickly one after another; past this the client is told to retry).
const CANCEL_ATTEMPT_COUNT_MAX: usize = 20;

/// How long a synchronous wait pauses before reading a task again whose final event was seen
/// but whose fold is not final.
const ENDED_REREAD_MS: u64 = 100;

/// The longest cancel reason, in bytes.
pub const CANCEL_REASON_BYTES_MAX: usize = 1_024;

/// `?format=`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json`, `markdown` or `html`; overrides `Accept`.
    #[serde(default)]
    pub format: Option<Format>,
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    headers
        .get("idempotency-key")
        .map(|value| {
            value.to_str().map(str::to_string).map_err(|_| Error::InvalidParameter {
                what: "Idempotency-Key".into(),
                message: "must be printable ASCII".into(),
            })
        })
        .transpose()
}

fn location(task_id: TaskId) -> String {
    format!("/tasks/{task_id}")
}

/// `POST /tasks/submit`: admits the task and answers 202 with its id and `Location`.
/// The span of a request that submits a task, the root of the task's trace: the child of the
/// caller's span when it sent a `traceparent` header (W3C Trace Context).
fn submit_span(name: &'static str, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!("gateway", otel.name = name);
    events::trace::continue_trace(&span, headers.get("traceparent").and_then(|v| v.to_str().ok()));
    span
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TaskRequest>,
) -> Result<Response> {
    principal.require(Permission::Submit)?;
    let wants_webhook = request.webhook_url.is_some();
    let admitted = tracing::Instrument::instrument(
        admission::admit(&state, &principal, request, idempotency_key(&headers)?),
        submit_span("POST /tasks/submit", &headers),
    )
    .await?;
    let webhook_secret = if wants_webhook {
        Some(webhooks::secret_for(&state.config.webhooks.master_secret, admitted.task_id)?)
    } else {
        None
    };
    let location = location(admitted.task_id);
    let body = SubmitResponse {
        task_id: admitted.task_id.to_string(),
        location: location.clone(),
        created: admitted.created,
        webhook_secret,
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Waits until the task ends or `deadline` passes; `None` on timeout.
pub(crate) async fn wait_final(
    state: &AppState,
    task_id: TaskId,
    deadline: tokio::time::Instant,
) -> Result<Option<TrackedTask>> {
    let mut watch = state.follower.watch(task_id);
    let mut task = TrackedTask::new(task_id);
    loop {
        let ended_before_read = watch.has_ended();
        task.catch_up(state.log.as_ref(), usize::MAX).await?;
        if task.state.status.is_final() {
            return Ok(Some(task));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        if ended_before_read {
            // Seen ended, yet the fold is not final (an event it refused): read again later,
            // never in a busy loop.
            tokio::time::sleep(
                Duration::from_millis(ENDED_REREAD_MS).min(deadline - tokio::time::Instant::now()),
            )
            .await;
            continue;
        }
        // Only the end matters here: one read when it comes, not one per phase.
        watch.ended(deadline).await;
    }
}

/// `POST /tasks/execute`: admits the task and waits for its end, up to its timeout.
pub(crate) async fn execute(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    QueryParams(query): QueryParams<FormatQuery>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TaskRequest>,
) -> Result<Response> {
    principal.require(Permission::Submit)?;
    let format = Format::negotiate(query.format, &headers);
    let started = tokio::time::Instant::now();
    let admitted = tracing::Instrument::instrument(
        admission::admit(&state, &principal, request, idempotency_key(&headers)?),
        submit_span("POST /tasks/execute", &headers),
    )
    .await?;
    // The task's timeout, and the moment its end takes to be recorded after it.
    let wait_ms = admitted.timeout_ms.saturating_add(EXECUTE_END_GRACE_MS).min(EXECUTE_WAIT_MS_MAX);
    let deadline = started + Duration::from_millis(wait_ms);
    match wait_final(&state, admitted.task_id, deadline).await? {
        // Refused (the refusal is recorded, with its reason, as the task's end): 422 with it.
        Some(task) if task.state.status == TaskStatus::Rejected => {
            render::task(&task.view(), format, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Some(task) => render::task(&task.view(), format, StatusCode::OK),
        None => {
            state.metrics.execute_timeouts.inc();
            Err(Error::ExecuteTimeout { task_id: admitted.task_id, waited_ms: wait_ms })
        }
    }
}

/// Loads a task the principal may read (404 otherwise: existence is not revealed).
pub(crate) async fn readable_task(state: &AppState, principal: &Principal, id: &str) -> Result<TrackedTask> {
    let task_id = parse_task_id(id)?;
    match TrackedTask::load(state.log.as_ref(), task_id).await? {
        Some(task) if principal.can_read(task.submitter()) => Ok(task),
        _ => Err(Error::NotFound { what: format!("task {task_id}") }),
    }
}

/// `GET /tasks/{id}`: the task's status, result and timings.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let task = readable_task(&state, &principal, &id).await?;
    render::task(&task.view(), Format::negotiate(query.format, &headers), StatusCode::OK)
}

/// `?from_version=&limit=` of the events page.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The first stream version to return (default 1).
    #[serde(default)]
    pub from_version: Option<u64>,
    /// Events per page (default and maximum 500).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A page of a task's history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsPage {
    /// The task.
    pub task_id: String,
    /// The events, in version order.
    pub events: Vec<EventView>,
    /// Where the next page starts, when there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_from_version: Option<u64>,
}

/// `GET /tasks/{id}/events`: the history, paged.
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<axum::Json<EventsPage>> {
    let task_id = parse_task_id(&id)?;
    let stream = StreamId::task(task_id);
    let first = state.log.read_stream(&stream, 1, 1).await?;
    let submitter = match first.first().map(TaskEvent::from_recorded).transpose()? {
        Some(TaskEvent::Submitted(TaskSubmitted { spec, .. })) => spec.submitter,
        _ => return Err(Error::NotFound { what: format!("task {task_id}") }),
    };
    if !principal.can_read(&submitter) {
        return Err(Error::NotFound { what: format!("task {task_id}") });
    }
    let from = in_range("from_version", query.from_version, 1, VERSION_MAX)?.unwrap_or(1);
    let limit = in_range("limit", query.limit, 1, EVENTS_PAGE_COUNT_MAX)?.unwrap_or(EVENTS_PAGE_COUNT_MAX);
    let recorded = state.log.read_stream(&stream, from, limit).await?;
    let next_from_version =
        (recorded.len() == limit).then(|| recorded.last().map_or(from, |e| e.version + 1));
    let events = recorded.iter().map(EventView::of).collect::<Result<Vec<_>>>()?;
    Ok(axum::Json(EventsPage { task_id: task_id.to_string(), events, next_from_version }))
}

/// The body of a cancel (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why the task is cancelled.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Cancels a task the principal may read and cancel; 409 when it has ended.
pub(crate) async fn cancel_task(
    state: &AppState,
    principal: &Principal,
    id: &str,
    reason: String,
) -> Result<TrackedTask> {
    principal.require(Permission::Cancel)?;
    if reason.len() > CANCEL_REASON_BYTES_MAX {
        return Err(Error::InvalidBody {
            field: Some("reason".into()),
            message: format!("at most {CANCEL_REASON_BYTES_MAX} bytes"),
            unknown_field: false,
        });
    }
    // Recorded in the log and shown with the task: secrets and personal data redacted, as in
    // a submission.
    let reason = security::scrub(&reason).unwrap_or(reason);
    for _ in 0..CANCEL_ATTEMPT_COUNT_MAX {
        let mut task = readable_task(state, principal, id).await?;
        let decided = events::commands::cancel(
            &task.state,
            task.read_version,
            task.correlation_id,
            &principal.subject,
            &reason,
            "gateway",
            events::now_ms(),
        );
        let new_event = match decided {
            Ok(event) => event,
            Err(CancelError::Ended(status)) => {
                return Err(Error::TaskFinished { task_id: task.task_id, status: status.to_string() });
            }
            Err(CancelError::NotFound) => return Err(Error::NotFound { what: format!("task {id}") }),
            Err(CancelError::Event(error)) => return Err(error.into()),
        };
        let stream = StreamId::task(task.task_id);
        match state.log.append(&stream, ExpectedVersion::Exact(task.read_version), vec![new_event]).await {
            Ok(_) => {
                task.catch_up(state.log.as_ref(), usize::MAX).await?;
                return Ok(task);
            }
            Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::Overloaded { what: "concurrent changes to this task (retry the cancel)" })
}

/// `POST /tasks/{id}/cancel`: appends `TaskCancelled` at the version read; 409 if it ended.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    OptionalJsonBody(request): OptionalJsonBody<CancelRequest>,
) -> Result<axum::Json<TaskView>> {
    let task = cancel_task(&state, &principal, &id, request.reason.unwrap_or_default()).await?;
    Ok(axum::Json(task.view()))
}

/// The filters and paging of `GET /tasks`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tasks in this status.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Only tasks asking for this capability.
    #[serde(default)]
    pub capability: Option<String>,
    /// Only tasks whose current attempt went to this agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// Only tasks from this submitter (a principal that reads only its own tasks sees only
    /// its own whatever this says).
    #[serde(default)]
    pub submitter: Option<String>,
    /// Full-text search: only tasks whose description holds every word of this text
    /// (case-insensitive, not stemmed).
    #[serde(default)]
    pub q: Option<String>,
    /// Only tasks submitted at or after this time, ms since the epoch.
    #[serde(default)]
    pub submitted_after_ms: Option<i64>,
    /// Only tasks submitted before this time, ms since the epoch.
    #[serde(default)]
    pub submitted_before_ms: Option<i64>,
    /// Where to continue: the `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Tasks per page (default 50, at most 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A task as `GET /tasks` lists it (`GET /tasks/{id}` has the result and timings).
#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskListItem {
    /// The task's id.
    pub task_id: String,
    /// Where it is: `submitted`, `running`, `completed`, `failed`, `rejected`, `cancelled`, …
    pub status: String,
    /// The capability asked for.
    pub capability: String,
    /// What was asked (as screened: redacted when screening redacted it).
    pub description: String,
    /// Who submitted it.
    pub submitter: String,
    /// The agent of the latest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The latest attempt (0 before matching).
    pub attempt: i64,
    /// When it was submitted, ms since the epoch.
    pub submitted_at_ms: i64,
    /// When its last event happened, ms since the epoch.
    pub updated_at_ms: i64,
    /// Why it ended without a result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl From<projections::TaskSummary> for TaskListItem {
    fn from(t: projections::TaskSummary) -> Self {
        Self {
            task_id: t.task_id,
            status: t.status,
            capability: t.capability,
            description: t.description,
            submitter: t.submitter,
            agent_id: t.agent_id,
            attempt: t.attempt,
            submitted_at_ms: t.submitted_at_ms,
            updated_at_ms: t.updated_at_ms,
            end_reason: t.end_reason,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskPage {
    /// The tasks, newest first.
    pub tasks: Vec<TaskListItem>,
    /// Pass as `cursor` to continue, when there may be more. Stable while new tasks arrive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /tasks`: tasks the principal may read, filtered, newest first, from the projections'
/// task view (which follows the log within a moment: a task just submitted may take a few
/// milliseconds to appear).
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<axum::Json<TaskPage>> {
    if !principal.has(Permission::ReadOwn) && !principal.has(Permission::ReadAll) {
        return Err(Error::Forbidden { permission: Permission::ReadOwn.as_str() });
    }
    let read = state.read_models("the task list")?;
    let limit = in_range("limit", query.limit, 1, TASKS_PAGE_COUNT_MAX)?.unwrap_or(50);
    let submitter = if principal.has(Permission::ReadAll) {
        query.submitter
    } else if query.submitter.as_ref().is_some_and(|s| *s != principal.subject) {
        // Someone else's tasks: none of them are readable.
        return Ok(axum::Json(TaskPage { tasks: Vec::new(), next_cursor: None }));
    } else {
        Some(principal.subject.clone())
    };
    let after = query
        .cursor
        .as_deref()
        .map(str::parse::<projections::TaskCursor>)
        .transpose()
        .map_err(|e| Error::InvalidParameter { what: "cursor".into(), message: e.to_string() })?;
    let view_query = projections::TaskQuery {
        status: query.status,
        capability: query.capability,
        agent_id: query.agent,
        submitter,
        submitted_from_ms: query.submitted_after_ms,
        submitted_until_ms: query.submitted_before_ms,
        search: query.q,
        // One more than the page to learn whether another page follows.
        limit: Some(u32::try_from(limit + 1).unwrap_or(u32::MAX)),
        offset: 0,
        after,
    };
    let mut tasks = read.tasks.list(&view_query).await?;
    let more = tasks.len() > limit;
    tasks.truncate(limit);
    let next_cursor =
        if more { tasks.last().map(|t| projections::TaskCursor::of(t).to_string()) } else { None };
    Ok(axum::Json(TaskPage { tasks: tasks.into_iter().map(TaskListItem::from).collect(), next_cursor }))
}
