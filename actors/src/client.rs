//! What a client of the pipeline does through the log alone, in any process: submit a signed
//! task, cancel it, read its state, and wait for it to end.

use std::time::Duration;

use events::commands::{self, CancelError};
use events::task::{Channel, TaskEvent};
use events::{
    Aggregate, DomainEvent, EventLog, ExpectedVersion, KeyPair, LogError, RecordedEvent, SignedSubmission,
    StreamId, TaskId, TaskSpec, TaskState,
};

use crate::error::{Error, Result};
use crate::phase::load_task;

/// Redacts secrets and personal data from a spec's description, input and labels, as the
/// default screening policy asks, before it is signed and logged: the log is append-only, so
/// what must be redacted must never reach it. Returns whether anything changed.
pub fn scrub_spec(spec: &mut TaskSpec) -> bool {
    security::scrub_submission(&mut spec.description, &mut spec.input, &mut spec.labels)
}

/// Scrubs `spec` ([`scrub_spec`]), signs it with `key` and appends it as a new task's
/// `task_submitted`.
pub async fn submit(
    log: &dyn EventLog,
    key: &KeyPair,
    spec: TaskSpec,
    channel: Channel,
    emitter: &str,
) -> Result<TaskId> {
    let (task_id, event) = new_task_event(spec, key, channel, emitter)?;
    append_submission(log, task_id, event, channel, emitter).await
}

/// Appends a new task's `task_submitted`; one too large for the log is refused and recorded
/// as such (`task_submitted` with an empty spec and `task_rejected` saying the size and the
/// limit), so the refusal is in the history like any other and the caller gets a task id.
pub(crate) async fn append_submission(
    log: &dyn EventLog,
    task_id: TaskId,
    event: events::NewEvent,
    channel: Channel,
    emitter: &str,
) -> Result<TaskId> {
    let stream = StreamId::task(task_id);
    if event.payload.len() > events::EVENT_PAYLOAD_BYTES_MAX {
        let reason = format!(
            "the submission is {} bytes encoded; a task must fit in {} bytes (pass large inputs by reference: a URL or a path the agent can read)",
            event.payload.len(),
            events::EVENT_PAYLOAD_BYTES_MAX
        );
        let batch = commands::refuse_submission(
            task_id,
            channel,
            events::task::RejectionCode::InvalidSubmission,
            &reason,
            emitter,
            events::now_ms(),
        )?;
        log.append(&stream, ExpectedVersion::NoStream, batch).await?;
        return Ok(task_id);
    }
    log.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
    Ok(task_id)
}

/// The `task_submitted` event of a new task for `spec`, scrubbed ([`scrub_spec`]) and signed
/// with `key`.
pub(crate) fn new_task_event(
    mut spec: TaskSpec,
    key: &KeyPair,
    channel: Channel,
    emitter: &str,
) -> Result<(TaskId, events::NewEvent)> {
    scrub_spec(&mut spec);
    let submission = SignedSubmission::sign(TaskId::new(), spec, key)?;
    submission_event(submission, channel, emitter)
}

/// Appends a submission someone signed as a new task's `task_submitted`. The signature is
/// verified by the ingress phase, which rejects the task if it does not verify.
pub async fn submit_signed(
    log: &dyn EventLog,
    submission: SignedSubmission,
    channel: Channel,
    emitter: &str,
) -> Result<TaskId> {
    let (task_id, event) = submission_event(submission, channel, emitter)?;
    append_submission(log, task_id, event, channel, emitter).await
}

/// The `task_submitted` event of a submission: a new task's first event
/// ([`events::commands::submit`]).
pub(crate) fn submission_event(
    submission: SignedSubmission,
    channel: Channel,
    emitter: &str,
) -> Result<(TaskId, events::NewEvent)> {
    let task_id = submission.task_id;
    let mut event = events::commands::submit(submission, channel, emitter, events::now_ms())?;
    // The submitter's span, when a trace is recorded: the root of the task's trace.
    event.metadata.traceparent = events::trace::current_traceparent();
    Ok((task_id, event))
}

/// Cancels a task: appends `task_cancelled` unless the task has ended
/// ([`events::commands::cancel`]). Returns false when it had ended already. The reason is
/// recorded with secrets and personal data redacted.
pub async fn cancel(log: &dyn EventLog, task_id: TaskId, by: &str, reason: &str) -> Result<bool> {
    let reason = security::scrub(reason).unwrap_or_else(|| reason.to_string());
    for _ in 0..crate::phase::CONFLICT_RETRY_COUNT_MAX {
        let loaded = load_task(log, task_id).await?;
        let new = match commands::cancel(
            &loaded.state,
            loaded.version,
            loaded.correlation_id,
            by,
            &reason,
            by,
            events::now_ms(),
        ) {
            Ok(new) => new,
            Err(CancelError::NotFound) => return Err(Error::NotFound(format!("task {task_id}"))),
            Err(CancelError::Ended(_)) => return Ok(false),
            Err(CancelError::Event(error)) => return Err(error.into()),
        };
        match log.append(&loaded.stream_id, ExpectedVersion::Exact(loaded.version), vec![new]).await {
            Ok(_) => return Ok(true),
            Err(LogError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::ConflictRetriesExhausted {
        stream_id: StreamId::task(task_id).to_string(),
        attempts: crate::phase::CONFLICT_RETRY_COUNT_MAX,
    })
}

/// A task's folded state and its events.
pub async fn task_history(log: &dyn EventLog, task_id: TaskId) -> Result<(TaskState, Vec<RecordedEvent>)> {
    let stream = StreamId::task(task_id);
    let mut events = Vec::new();
    loop {
        let page = log.read_stream(&stream, events.len() as u64 + 1, 1_000).await?;
        let count = page.len();
        events.extend(page);
        if count < 1_000 {
            break;
        }
    }
    let mut state = TaskState::default();
    for event in &events {
        if let Ok(decoded) = TaskEvent::from_recorded(event) {
            let _ = state.apply(&decoded);
        }
    }
    Ok((state, events))
}

/// A task's folded state.
pub async fn task_state(log: &dyn EventLog, task_id: TaskId) -> Result<TaskState> {
    Ok(load_task(log, task_id).await?.state)
}

/// Waits, by reading the task every `poll`, until it ends or `timeout` passes; calls
/// `on_change` with each new state and its version. Returns the last state seen.
pub async fn wait_final(
    log: &dyn EventLog,
    task_id: TaskId,
    timeout: Duration,
    poll: Duration,
    mut on_change: impl FnMut(&TaskState, events::Version) + Send,
) -> Result<TaskState> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = 0;
    loop {
        let loaded = load_task(log, task_id).await?;
        if loaded.version != seen {
            seen = loaded.version;
            on_change(&loaded.state, loaded.version);
        }
        if loaded.is_final() {
            return Ok(loaded.state);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "task {task_id} is still {} after {} ms",
                loaded.state.status,
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(poll).await;
    }
}
