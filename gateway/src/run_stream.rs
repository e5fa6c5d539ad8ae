//! `GET /runs/{id}/stream`: a run's events as they happen, over WebSocket (with an upgrade
//! request) or Server-Sent Events (otherwise), as `/tasks/{id}/stream` does for a task.
//!
//! A subscriber gets the history from `from_version` (default 1; SSE also honours
//! `Last-Event-ID`, each event's id being its version), then every new event; the stream ends
//! after the run's final event (`workflow_completed`, `workflow_failed`,
//! `workflow_cancelled`): WebSocket with close code 1000 "run finished", SSE by ending the
//! response. A WebSocket client may send `{"action": "cancel", "reason": "…"}`. The run's
//! stream is read a page at a time, and looked at again every [`RUN_STREAM_POLL_MS`] while
//! nothing new came; the open streams share the gateway's limit with the tasks'.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events::{RecordedEvent, StreamId, WorkflowId};

use crate::auth::{Permission, Principal};
use crate::config::WS_CLIENT_MESSAGE_BYTES_MAX;
use crate::error::{Error, Result};
use crate::extract::QueryParams;
use crate::routes::workflows::{RunEventView, event_view};
use crate::state::AppState;
use crate::stream::{StreamQuery, StreamSlot, close, send};

/// How often an open run stream looks for new events while none came, ms.
pub const RUN_STREAM_POLL_MS: u64 = 100;

/// Events read per page.
const PAGE_COUNT: usize = 64;

fn is_final(event: &RecordedEvent) -> bool {
    matches!(event.event_type.as_str(), "workflow_completed" | "workflow_failed" | "workflow_cancelled")
}

struct RunCursor {
    state: AppState,
    stream: StreamId,
    next_version: u64,
    pending: std::collections::VecDeque<RecordedEvent>,
    done: bool,
}

impl RunCursor {
    async fn next(&mut self) -> Result<Option<RecordedEvent>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(event) = self.pending.pop_front() {
                self.done = is_final(&event);
                return Ok(Some(event));
            }
            let page = self.state.log.read_stream(&self.stream, self.next_version, PAGE_COUNT).await?;
            if let Some(last) = page.last() {
                self.next_version = last.version + 1;
            } else {
                tokio::time::sleep(Duration::from_millis(RUN_STREAM_POLL_MS)).await;
            }
            self.pending.extend(page);
        }
    }
}

/// A WebSocket frame.
#[derive(serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RunFrame {
    Event { event: RunEventView },
    Error { error: crate::error::ErrorBody },
}

/// `GET /runs/{id}/stream`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<StreamQuery>,
    request: Request,
) -> Result<Response> {
    let run = crate::routes::workflows::readable_run(&state, &principal, &id).await?;
    let run_id = run
        .state
        .started
        .as_ref()
        .map(|s| s.run_id)
        .ok_or_else(|| Error::NotFound { what: format!("run {id}") })?;
    let permit =
        state.streams.clone().try_acquire_owned().map_err(|_| Error::Overloaded { what: "open streams" })?;
    let slot = StreamSlot::new(permit, state.metrics.clone());
    let mut from_version =
        crate::config::in_range("from_version", query.from_version, 1, crate::config::VERSION_MAX)?
            .unwrap_or(1);
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_websocket
        && let Some(version) = request
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    {
        from_version = from_version.max(version.saturating_add(1));
    }
    let cursor = RunCursor {
        state: state.clone(),
        stream: StreamId::workflow(run_id),
        next_version: from_version,
        pending: Default::default(),
        done: false,
    };
    if wants_websocket {
        let (mut parts, _) = request.into_parts();
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state).await.map_err(|r| {
            Error::InvalidParameter { what: "websocket upgrade".into(), message: r.body_text() }
        })?;
        return Ok(upgrade
            .max_message_size(WS_CLIENT_MESSAGE_BYTES_MAX)
            .max_frame_size(WS_CLIENT_MESSAGE_BYTES_MAX)
            .on_upgrade(move |socket| websocket(socket, cursor, run_id, principal, slot)));
    }
    let events = futures::stream::unfold((cursor, slot), |(mut cursor, slot)| async move {
        let event = match cursor.next().await {
            Ok(Some(recorded)) => Event::default()
                .id(recorded.version.to_string())
                .event(recorded.event_type.as_str())
                .json_data(event_view(&recorded))
                .unwrap_or_else(|_| Event::default().event("error").data("encoding failed")),
            Ok(None) => return None,
            Err(error) => {
                cursor.done = true;
                Event::default()
                    .event("error")
                    .json_data(error.body())
                    .unwrap_or_else(|_| Event::default().event("error"))
            }
        };
        Some((Ok::<Event, Infallible>(event), (cursor, slot)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

async fn websocket(
    mut socket: WebSocket,
    mut cursor: RunCursor,
    run_id: WorkflowId,
    principal: Arc<Principal>,
    slot: StreamSlot,
) {
    loop {
        tokio::select! {
            next = cursor.next() => {
                let frame = match next {
                    Ok(Some(recorded)) => RunFrame::Event { event: event_view(&recorded) },
                    Ok(None) => return close(socket, 1000, "run finished").await,
                    Err(error) => {
                        let _ = send(&mut socket, &RunFrame::Error { error: error.body() }).await;
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
                let outcome = match crate::extract::decode::<crate::stream::StreamCommand>(text.as_bytes()) {
                    Ok(crate::stream::StreamCommand::Cancel { reason }) => match principal.require(Permission::Cancel) {
                        Ok(()) => workflow::cancel(
                            cursor.state.log.as_ref(),
                            run_id,
                            &principal.subject,
                            &reason.unwrap_or_else(|| "cancelled over a stream".into()),
                        )
                        .await
                        .map_err(|e| Error::RunConflict { run_id: run_id.to_string(), reason: e.to_string() }),
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                };
                if let Err(error) = outcome
                    && send(&mut socket, &RunFrame::Error { error: error.body() }).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
