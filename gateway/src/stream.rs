//! `GET /tasks/{id}/stream`: a task's events as they happen, over WebSocket (with an upgrade
//! request) or Server-Sent Events (otherwise).
//!
//! A subscriber first gets the history from `from_version` (default 1; SSE also honours
//! `Last-Event-ID`), then every new event, and the stream ends after the task's final event
//! (`task_completed`, `task_failed`, `task_rejected`, `task_cancelled`): WebSocket with close
//! code 1000 "task finished", SSE by ending the response.
//!
//! # Bounds
//! The server reads the log one page at a time and only when the previous frames were taken,
//! so a stream holds at most one page of events. A WebSocket client that does not take a frame
//! within [`STREAM_SEND_TIMEOUT_MS`] is dropped (close code 1008 "slow consumer"); at most
//! [`crate::config::STREAMS_OPEN_COUNT_MAX`] streams are open at once (503 beyond); a client's
//! messages are at most [`WS_CLIENT_MESSAGE_BYTES_MAX`] bytes.
//!
//! # Commands (WebSocket)
//! `{"action": "cancel", "reason": "…"}` cancels the task (needs `cancel`); the cancellation
//! then arrives as the final event. A refused command answers `{"kind": "error", "error": …}`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events::{RecordedEvent, TaskId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::Principal;
use crate::config::{STREAM_SEND_TIMEOUT_MS, WS_CLIENT_MESSAGE_BYTES_MAX};
use crate::error::{Error, ErrorBody, Result};
use crate::extract::{IdPath, QueryParams};
use crate::follow::TaskWatch;
use crate::metrics::Metrics;
use crate::routes::tasks::{cancel_task, readable_task};
use crate::state::AppState;
use crate::task::{EventView, TrackedTask};
use crate::webhooks::WEBHOOK_EVENT_TYPES;

/// Events read from the log per page while streaming.
const STREAM_PAGE_COUNT: usize = 64;

/// How long a stream waits for news before looking at the log anyway (a day: the follower and
/// the poll fallback inside [`TaskWatch::changed`] do the real waking).
const STREAM_WAIT_S: u64 = 24 * 60 * 60;

/// `?from_version=`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The first version to send (default 1: the whole history).
    #[serde(default)]
    pub from_version: Option<u64>,
}

/// What a WebSocket client may send.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamCommand {
    /// Cancel the task.
    Cancel {
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// A WebSocket frame the server sends.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamFrame {
    /// One event of the task.
    Event {
        /// The event.
        event: EventView,
    },
    /// A command was refused.
    Error {
        /// Why.
        error: ErrorBody,
    },
}

/// Holds a stream's slot and counts it as open.
pub(crate) struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    pub(crate) metrics: Arc<Metrics>,
}

impl StreamSlot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.streams_open.inc();
        Self { _permit: permit, metrics }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.metrics.streams_open.dec();
    }
}

fn is_final(event: &RecordedEvent) -> bool {
    WEBHOOK_EVENT_TYPES.contains(&event.event_type.as_str())
}

/// Reads a task's stream page by page for one subscriber.
struct Cursor {
    state: AppState,
    task: TrackedTask,
    watch: TaskWatch,
    pending: VecDeque<RecordedEvent>,
    from_version: u64,
    done: bool,
}

impl Cursor {
    fn new(state: AppState, task_id: TaskId, from_version: u64) -> Self {
        let watch = state.follower.watch(task_id);
        Self {
            state,
            task: TrackedTask::new(task_id),
            watch,
            pending: VecDeque::new(),
            from_version,
            done: false,
        }
    }

    /// The next event to send, waiting for one; `None` once the final event was sent.
    async fn next(&mut self) -> Result<Option<RecordedEvent>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(event) = self.pending.pop_front() {
                if event.version < self.from_version {
                    self.done = is_final(&event);
                    continue;
                }
                self.done = is_final(&event);
                return Ok(Some(event));
            }
            self.watch.mark_seen();
            let events = self.task.catch_up(self.state.log.as_ref(), STREAM_PAGE_COUNT).await?;
            if events.is_empty() {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(STREAM_WAIT_S);
                self.watch.changed(deadline).await;
            }
            self.pending.extend(events);
        }
    }
}

/// `GET /tasks/{id}/stream`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams<StreamQuery>,
    request: Request,
) -> Result<Response> {
    let task = readable_task(&state, &principal, &id).await?;
    let permit =
        state.streams.clone().try_acquire_owned().map_err(|_| Error::Overloaded { what: "open streams" })?;
    let slot = StreamSlot::new(permit, state.metrics.clone());
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let mut from_version =
        crate::config::in_range("from_version", query.from_version, 1, crate::config::VERSION_MAX)?
            .unwrap_or(1);
    if wants_websocket {
        let (mut parts, _) = request.into_parts();
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state).await.map_err(|r| {
            Error::InvalidParameter { what: "websocket upgrade".into(), message: r.body_text() }
        })?;
        let cursor = Cursor::new(state.clone(), task.task_id, from_version);
        return Ok(upgrade
            .max_message_size(WS_CLIENT_MESSAGE_BYTES_MAX)
            .max_frame_size(WS_CLIENT_MESSAGE_BYTES_MAX)
            .on_upgrade(move |socket| websocket(socket, cursor, principal, slot)));
    }
    let last_event_id = request.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    if let Some(version) = last_event_id.and_then(|last| last.trim().parse::<u64>().ok()) {
        from_version = from_version.max(version.saturating_add(1));
    }
    let cursor = Cursor::new(state, task.task_id, from_version);
    let events = futures::stream::unfold((cursor, slot), |(mut cursor, slot)| async move {
        let event = match cursor.next().await {
            Ok(Some(recorded)) => match EventView::of(&recorded) {
                Ok(view) => Event::default()
                    .id(recorded.version.to_string())
                    .event(recorded.event_type.as_str())
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().event("error").data("encoding failed")),
                Err(error) => {
                    cursor.done = true;
                    error_event(&error)
                }
            },
            Ok(None) => return None,
            Err(error) => {
                cursor.done = true;
                error_event(&error)
            }
        };
        Some((Ok::<Event, Infallible>(event), (cursor, slot)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

fn error_event(error: &Error) -> Event {
    tracing::error!(%error, "a task stream failed");
    Event::default()
        .event("error")
        .json_data(error.body())
        .unwrap_or_else(|_| Event::default().event("error"))
}

/// Sends one frame as JSON text; `Err("slow consumer")` when the client does not take it in time.
pub(crate) async fn send(
    socket: &mut WebSocket,
    frame: &impl Serialize,
) -> std::result::Result<(), &'static str> {
    let text = serde_json::to_string(frame).map_err(|_| "encoding failed")?;
    match tokio::time::timeout(
        Duration::from_millis(STREAM_SEND_TIMEOUT_MS),
        socket.send(Message::Text(text.into())),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("gone"),
        Err(_) => Err("slow consumer"),
    }
}

/// Closes the socket with `code` and `reason`.
pub(crate) async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    let _ = tokio::time::timeout(Duration::from_millis(STREAM_SEND_TIMEOUT_MS), socket.send(frame)).await;
}

async fn websocket(mut socket: WebSocket, mut cursor: Cursor, principal: Arc<Principal>, slot: StreamSlot) {
    let task_id = cursor.task.task_id.to_string();
    loop {
        tokio::select! {
            next = cursor.next() => {
                let frame = match next {
                    Ok(Some(recorded)) => match EventView::of(&recorded) {
                        Ok(event) => StreamFrame::Event { event },
                        Err(error) => StreamFrame::Error { error: error.body() },
                    },
                    Ok(None) => return close(socket, 1000, "task finished").await,
                    Err(error) => {
                        tracing::error!(%error, "a task stream failed");
                        let _ = send(&mut socket, &StreamFrame::Error { error: error.body() }).await;
                        return close(socket, 1011, "server error").await;
                    }
                };
                match send(&mut socket, &frame).await {
                    Ok(()) => {}
                    Err("slow consumer") => {
                        slot.metrics.streams_dropped_slow.inc();
                        return close(socket, 1008, "slow consumer").await;
                    }
                    Err(_) => return,
                }
            }
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let outcome = match crate::extract::decode::<StreamCommand>(text.as_bytes()) {
                    Ok(StreamCommand::Cancel { reason }) => {
                        cancel_task(&cursor.state, &principal, &task_id, reason.unwrap_or_default()).await.map(|_| ())
                    }
                    Err(error) => Err(error),
                };
                if let Err(error) = outcome
                    && send(&mut socket, &StreamFrame::Error { error: error.body() }).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
